/* Worker processes sharing arrays with no copy.
 *
 * The parent puts two inputs and an output in shared memory (kiln_shm_create), starts N
 * worker processes (fork + exec of this program), and each worker attaches by name
 * (kiln_shm_open), evaluates one fused expression over its slice and writes it straight
 * into the shared output. The parent then reduces the output. No array is copied or sent
 * anywhere: every process maps the same pages.
 *
 * Coordination is the programs' own: here the parent fills the inputs before starting the
 * workers, each worker writes only its own slice, and the parent reads after waitpid().
 *
 *   shm_workers [N_ELEMENTS [N_WORKERS]]      (exit status 0 when the result checks out)
 */
#include <kiln/kiln.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define EXPR "sqrt(a*a + b*b)"

static int fail(const char* what) {
  fprintf(stderr, "shm_workers: %s: %s\n", what, kiln_last_error());
  return 1;
}

/* A view of elements [lo, hi) of a 1-D float64 array: no copy, the segment stays mapped
 * through `whole`. */
static kiln_status slice(const kiln_array* whole, int64_t lo, int64_t hi, kiln_array** out) {
  int64_t n = hi - lo;
  return kiln_array_wrap((double*)kiln_array_data(whole) + lo, KILN_FLOAT64, 1, &n, NULL, NULL, NULL, out);
}

static int worker(const char* prefix, int index, int count) {
  char name_a[256], name_b[256], name_out[256];
  snprintf(name_a, sizeof name_a, "%s-a", prefix);
  snprintf(name_b, sizeof name_b, "%s-b", prefix);
  snprintf(name_out, sizeof name_out, "%s-out", prefix);
  kiln_array *a, *b, *out;
  if (kiln_shm_open(name_a, KILN_SHM_READONLY, &a) || kiln_shm_open(name_b, KILN_SHM_READONLY, &b) ||
      kiln_shm_open(name_out, 0, &out))
    return fail("attach");
  int64_t n = kiln_array_size(out), lo = n * index / count, hi = n * (index + 1) / count;
  kiln_array *sa, *sb, *so;
  if (slice(a, lo, hi, &sa) || slice(b, lo, hi, &sb) || slice(out, lo, hi, &so)) return fail("slice");
  const char* names[] = {"a", "b"};
  kiln_array* inputs[] = {sa, sb};
  kiln_set_num_threads(1); /* the workers are the parallelism here */
  if (kiln_eval(EXPR, 2, names, inputs, so, NULL)) return fail("eval");
  kiln_array_release(sa), kiln_array_release(sb), kiln_array_release(so);
  kiln_array_release(a), kiln_array_release(b), kiln_array_release(out);
  return 0;
}

int main(int argc, char** argv) {
  if (argc == 5 && strcmp(argv[1], "worker") == 0) return worker(argv[2], atoi(argv[3]), atoi(argv[4]));
  int64_t n = argc > 1 ? atoll(argv[1]) : 1000000;
  int workers = argc > 2 ? atoi(argv[2]) : 2;
  char prefix[64], name[96];
  snprintf(prefix, sizeof prefix, "kiln-example-%d", (int)getpid());
  kiln_array *a, *b, *out;
  snprintf(name, sizeof name, "%s-a", prefix);
  if (kiln_shm_create(name, KILN_FLOAT64, 1, &n, &a)) return fail("create a");
  snprintf(name, sizeof name, "%s-b", prefix);
  if (kiln_shm_create(name, KILN_FLOAT64, 1, &n, &b)) return fail("create b");
  snprintf(name, sizeof name, "%s-out", prefix);
  if (kiln_shm_create(name, KILN_FLOAT64, 1, &n, &out)) return fail("create out");
  double *pa = kiln_array_data(a), *pb = kiln_array_data(b), *po = kiln_array_data(out);
  for (int64_t i = 0; i < n; ++i) pa[i] = (double)(i % 1000) * 0.003, pb[i] = (double)(i % 777) * 0.004;

  for (int w = 0; w < workers; ++w) {
    pid_t pid = fork();
    if (pid == 0) {
      char index[16], count[16];
      snprintf(index, sizeof index, "%d", w);
      snprintf(count, sizeof count, "%d", workers);
      execl("/proc/self/exe", argv[0], "worker", prefix, index, count, (char*)NULL);
      _exit(127);
    }
  }
  int ok = 1;
  for (int w = 0; w < workers; ++w) {
    int status = 0;
    wait(&status);
    ok = ok && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  }
  double worst = 0, total = 0;
  for (int64_t i = 0; i < n; ++i) {
    double want = sqrt(pa[i] * pa[i] + pb[i] * pb[i]);
    worst = fmax(worst, fabs(po[i] - want) / (want > 1 ? want : 1));
    total += po[i];
  }
  printf("%d workers, %lld elements: sum of %s = %.6f, largest relative error %.2g\n", workers, (long long)n, EXPR,
         total, worst);
  const char* parts[] = {"a", "b", "out"};
  for (int i = 0; i < 3; ++i) {
    snprintf(name, sizeof name, "%s-%s", prefix, parts[i]);
    kiln_shm_unlink(name);
  }
  kiln_array_release(a), kiln_array_release(b), kiln_array_release(out);
  return ok && worst < 1e-15 ? 0 : 1;
}
