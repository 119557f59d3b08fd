/* kiln inside a program that has its own pthreads pool.
 *
 * Each pool thread takes jobs from a shared queue and calls kiln concurrently: every
 * kiln call is thread-safe, the same expression text plans once and is reused by all
 * threads, and the parallel work inside kiln runs under one process-wide thread budget
 * (kiln_set_num_threads), so the pool's threads do not multiply kiln's. Errors are
 * per thread: kiln_last_error() is thread-local, so one thread's failure never shows
 * up in another's message.
 *
 *   thread_pool [THREADS [JOBS [N]]]      (exit status 0 when every job checks out)
 */
#include <kiln/kiln.h>

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
} pool_state;

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
      if (fabs(out[i] - want) > 1e-14 * (fabs(want) + 1.0)) {
        report(pool, job, "wrong value");
        break;
      }
    }
  }
  if (job % 4 == 0) {
    char name[32];
    snprintf(name, sizeof name, "missing_%d", job);
    kiln_array* r = NULL;
    kiln_status st = kiln_eval(name, 2, names, inputs, NULL, &r);
    if (st != KILN_ERROR_UNKNOWN_NAME || r != NULL || strstr(kiln_last_error(), name) == NULL)
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
  /* kiln's own parallelism: 2 threads in all, however many pool threads call it. */
  if (kiln_set_num_threads(2) != KILN_OK) {
    fprintf(stderr, "kiln_set_num_threads: %s\n", kiln_last_error());
    return 1;
  }
  double* x = malloc((size_t)n * sizeof *x);
  if (!x) return 2;
  for (int64_t i = 0; i < n; i++) x[i] = (double)(i % 1000) * 0.01 - 5.0;

  pool_state pool = {.next_job = 0, .jobs = jobs, .n = n, .shared_x = x, .failures = 0};
  pthread_mutex_init(&pool.lock, NULL);
  pthread_t* ids = malloc((size_t)threads * sizeof *ids);
  if (!ids) return 2;
  for (int t = 0; t < threads; t++)
    if (pthread_create(&ids[t], NULL, pool_thread, &pool) != 0) return 2;
  for (int t = 0; t < threads; t++) pthread_join(ids[t], NULL);
  pthread_mutex_destroy(&pool.lock);
  free(ids);
  free(x);
  printf("%d jobs on %d pool threads, kiln budget %d threads: %s\n", jobs, threads, kiln_get_num_threads(),
         pool.failures ? "FAILED" : "all checks passed");
  return pool.failures ? 1 : 0;
}
