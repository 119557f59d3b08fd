/* kiln inside a program that has its own pthreads pool.
 *
 * Each pool thread takes jobs from a shared queue and calls kiln concurrently: every
 * kiln call is thread-safe, the same expression text plans once and is reused by all
 * threads, and the parallel work inside kiln runs under one process-wide thread budget
 * (kiln_set_num_threads), so the pool's threads do not multiply kiln's: the program counts its
 * threads and checks that kiln added none beyond the budget. Errors are
 * per thread: kiln_last_error() is thread-local, so one thread's failure never shows
 * up in another's message.
 *
 *   thread_pool [THREADS [JOBS [N]]]      (exit status 0 when every job checks out)
 */
#define _POSIX_C_SOURCE 200809L /* opendir */
#include <kiln/kiln.h>

#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  pthread_mutex_t lock;
  int next_job, jobs;
  int64_t n;
  const double* shared_x; /* one input every job reads; kiln only reads it */
  int failures;
  int most_threads; /* the most threads this process had, seen by the jobs */
} pool_state;

/* This process's threads now (Linux: one entry per thread in /proc/self/task). */
static int count_threads(void) {
  DIR* dir = opendir("/proc/self/task");
  if (!dir) return -1;
  int count = 0;
  for (struct dirent* e; (e = readdir(dir)) != NULL;)
    if (e->d_name[0] != '.') count++;
  closedir(dir);
  return count;
}

static void report(pool_state* pool, int job, const char* what) {
  pthread_mutex_lock(&pool->lock);
  fprintf(stderr, "job %d: %s\n", job, what);
  pool->failures++;
  pthread_mutex_unlock(&pool->lock);
}

/* One job: out = x * scale + sin(x) ** 2 into a buffer of the job's own, checked
 * against a C loop; every fourth job also makes a deliberate error and checks that its
 * own thread's message is the one it gets back. */
static void run_job(pool_state* pool, int job) {
  int64_t n = pool->n;
  double* scale = malloc(sizeof *scale);
  double* out = malloc((size_t)n * sizeof *out);
  if (!scale || !out) {
    report(pool, job, "out of memory");
    free(scale);
    free(out);
    return;
  }
  *scale = 1.0 + job;
  kiln_array *ax = NULL, *as = NULL, *aout = NULL; /* set only by calls that succeed */
  int64_t one = 1;
  if (kiln_array_wrap((void*)pool->shared_x, KILN_FLOAT64, 1, &n, NULL, NULL, NULL, &ax) ||
      kiln_array_wrap(scale, KILN_FLOAT64, 1, &one, NULL, NULL, NULL, &as) ||
      kiln_array_wrap(out, KILN_FLOAT64, 1, &n, NULL, NULL, NULL, &aout)) {
    report(pool, job, kiln_last_error());
    goto done;
  }
  const char* names[] = {"x", "scale"};
  kiln_array* inputs[] = {ax, as};
  if (kiln_eval("x * scale + sin(x) ** 2", 2, names, inputs, aout, NULL) != KILN_OK) {
    report(pool, job, kiln_last_error());
  } else {
    const double* x = pool->shared_x;
    for (int64_t i = 0; i < n; i++) {
      double s = sin(x[i]), want = x[i] * *scale + s * s;
      if (!(fabs(out[i] - want) <= 1e-14 * (fabs(want) + 1.0))) { /* NaN fails too */
        report(pool, job, "wrong value");
        break;
      }
    }
  }
  int now = count_threads();
  pthread_mutex_lock(&pool->lock);
  if (now > pool->most_threads) pool->most_threads = now;
  pthread_mutex_unlock(&pool->lock);
  if (job % 4 == 0) {
    char name[32];
    char quoted[40];
    snprintf(name, sizeof name, "missing_%d", job);
    snprintf(quoted, sizeof quoted, "'%s'", name); /* quoted: job 4's must not match job 40's */
    kiln_array* r = NULL;
    kiln_status st = kiln_eval(name, 2, names, inputs, NULL, &r);
    if (st != KILN_ERROR_UNKNOWN_NAME || r != NULL || strstr(kiln_last_error(), quoted) == NULL)
      report(pool, job, "the error message is not this thread's own");
  }
done:
  kiln_array_release(ax); /* NULL is a no-op */
  kiln_array_release(as);
  kiln_array_release(aout);
  free(scale);
  free(out);
}

static void* pool_thread(void* arg) {
  pool_state* pool = arg;
  for (;;) {
    pthread_mutex_lock(&pool->lock);
    int job = pool->next_job < pool->jobs ? pool->next_job++ : -1;
    pthread_mutex_unlock(&pool->lock);
    if (job < 0) return NULL;
    run_job(pool, job);
  }
}

int main(int argc, char** argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 8;
  int jobs = argc > 2 ? atoi(argv[2]) : 64;
  int64_t n = argc > 3 ? atoll(argv[3]) : 200000;
  if (threads < 1 || threads > 256 || jobs < 1 || n < 1) {
    fprintf(stderr, "usage: thread_pool [THREADS [JOBS [N]]]\n");
    return 2;
  }
  /* kiln's own parallelism: one budget however many pool threads call it. Here it is 1
   * thread: each call runs on its caller's thread, and kiln starts none of its own. */
  const int budget = 1;
  if (kiln_set_num_threads(budget) != KILN_OK) {
    fprintf(stderr, "kiln_set_num_threads: %s\n", kiln_last_error());
    return 1;
  }
  double* x = malloc((size_t)n * sizeof *x);
  if (!x) return 2;
  for (int64_t i = 0; i < n; i++) x[i] = (double)(i % 1000) * 0.01 - 5.0;

  int threads_before = count_threads(); /* main, plus any idle pool a library started at load */
  pool_state pool = {.next_job = 0, .jobs = jobs, .n = n, .shared_x = x, .failures = 0, .most_threads = 0};
  pthread_mutex_init(&pool.lock, NULL);
  pthread_t* ids = malloc((size_t)threads * sizeof *ids);
  if (!ids) return 2;
  int started = 0;
  while (started < threads && pthread_create(&ids[started], NULL, pool_thread, &pool) == 0) started++;
  if (started < threads) {
    fprintf(stderr, "thread_pool: started only %d of %d threads\n", started, threads);
    pool.failures++;
  }
  for (int t = 0; t < started; t++) pthread_join(ids[t], NULL);
  pthread_mutex_destroy(&pool.lock);
  free(ids);
  free(x);
  /* The pool's threads and at most budget - 1 workers of kiln's came on top of those before. */
  int allowed = threads_before + started + (budget - 1);
  printf("threads: %d before, at most %d while %d pool threads called kiln (allowed %d)\n", threads_before,
         pool.most_threads, started, allowed);
  if (threads_before < 1 || pool.most_threads > allowed) pool.failures++;
  printf("%d jobs on %d pool threads, kiln budget %d thread: %s\n", jobs, threads, kiln_get_num_threads(),
         pool.failures ? "FAILED" : "all checks passed");
  return pool.failures ? 1 : 0;
}
