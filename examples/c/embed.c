/* Embedding kiln's C ABI: wrap your own buffers, evaluate expressions, handle errors.
 *
 * The program owns three buffers. kiln wraps them without copying, evaluates a fused
 * expression straight into the third (out=), reduces into a new array kiln allocates,
 * and shows what a failing call looks like: a status code, kiln_last_error(), and the
 * caller's out buffer left exactly as it was. Everything is released at the end
 * (the test suite runs this under valgrind and AddressSanitizer).
 *
 *   embed [N]      (exit status 0 when every result matches a plain C loop)
 */
#include <kiln/kiln.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;

static void check(int ok, const char* what) {
  printf("%s: %s\n", ok ? "ok" : "FAILED", what);
  if (!ok) failures++;
}

/* kiln calls this once, when it drops its last reference to the wrapped memory. */
static void free_buffer(void* user) { free(user); }

int main(int argc, char** argv) {
  int64_t n = argc > 1 ? atoll(argv[1]) : 100000;
  if (n < 2) n = 2;
  printf("kiln %s (number %d), SIMD %s, %d threads\n", kiln_version(), kiln_version_number(), kiln_simd_isa(),
         kiln_get_num_threads());
  if (kiln_version_number() != KILN_VERSION_NUMBER) check(0, "header and library versions agree");

  double* x = malloc((size_t)n * sizeof *x);
  double* y = malloc((size_t)n * sizeof *y);
  double* out = malloc((size_t)n * sizeof *out);
  double* snapshot = malloc((size_t)n * sizeof *snapshot);
  kiln_array *ax = NULL, *ay = NULL, *aout = NULL, *total = NULL, *short_y = NULL; /* NULL: not made */
  if (!x || !y || !out || !snapshot) {
    free(x);
    goto fail;
  }
  for (int64_t i = 0; i < n; i++) {
    x[i] = sin(0.001 * (double)i) * 3.0;
    y[i] = cos(0.002 * (double)i);
  }

  /* Zero-copy wraps. x is handed over: kiln frees it through free_buffer when the last
   * handle goes. y and out stay ours (release NULL): we free them ourselves. */
  if (kiln_array_wrap(x, KILN_FLOAT64, 1, &n, NULL, free_buffer, x, &ax) != KILN_OK) {
    fprintf(stderr, "wrap: %s\n", kiln_last_error());
    free(x); /* a failed wrap leaves ownership with the caller */
    goto fail;
  }
  if (kiln_array_wrap(y, KILN_FLOAT64, 1, &n, NULL, NULL, NULL, &ay) != KILN_OK ||
      kiln_array_wrap(out, KILN_FLOAT64, 1, &n, NULL, NULL, NULL, &aout) != KILN_OK) {
    fprintf(stderr, "wrap: %s\n", kiln_last_error());
    goto fail;
  }
  const char* names[] = {"x", "y"};
  kiln_array* inputs[] = {ax, ay};

  /* 1. One fused pass, written into the caller's buffer (out=): no temporaries. */
  const char* expr = "where(x > 0, x, 0.1*x) + sqrt(x*x + y*y)";
  if (kiln_eval(expr, 2, names, inputs, aout, NULL) != KILN_OK) {
    fprintf(stderr, "eval: %s\n", kiln_last_error());
    goto fail;
  }
  double worst = 0.0;
  for (int64_t i = 0; i < n; i++) {
    double want = (x[i] > 0 ? x[i] : 0.1 * x[i]) + sqrt(x[i] * x[i] + y[i] * y[i]);
    double err = fabs(out[i] - want) / (fabs(want) + 1e-300);
    if (!(err <= worst)) worst = err; /* a NaN sticks */
  }
  check(worst < 1e-15, "fused where/sqrt into out= matches the C loop");

  /* 2. A reduction into a new array that kiln allocates (a 0-d float64). */
  if (kiln_eval("sum(x * y)", 2, names, inputs, NULL, &total) != KILN_OK) {
    fprintf(stderr, "eval: %s\n", kiln_last_error());
    goto fail;
  }
  double want_total = 0.0;
  for (int64_t i = 0; i < n; i++) want_total += x[i] * y[i];
  double got_total = *(const double*)kiln_array_data(total);
  check(kiln_array_ndim(total) == 0 && kiln_array_dtype(total) == KILN_FLOAT64, "sum() gives a 0-d float64");
  check(fabs(got_total - want_total) <= 1e-12 * fabs(want_total) + 1e-12, "sum(x * y) matches the C loop");
  printf("sum(x * y) = %.6f\n", got_total);
  kiln_array_release(total);
  total = NULL;

  /* 3. Errors: a status code, a message naming the problem, and out untouched. */
  memcpy(snapshot, out, (size_t)n * sizeof *out);
  kiln_status status = kiln_eval("x +* y", 2, names, inputs, aout, NULL);
  printf("\"x +* y\": %s: %s (at byte %ld)\n", kiln_status_string(status), kiln_last_error(),
         kiln_last_error_offset());
  check(status == KILN_ERROR_PARSE && kiln_last_error_offset() == 3, "a parse error names the offset");
  status = kiln_eval("x + z", 2, names, inputs, aout, NULL);
  printf("\"x + z\": %s: %s\n", kiln_status_string(status), kiln_last_error());
  check(status == KILN_ERROR_UNKNOWN_NAME && strstr(kiln_last_error(), "z") != NULL, "an unknown name is named");

  int64_t half = n / 2;
  if (kiln_array_wrap(y, KILN_FLOAT64, 1, &half, NULL, NULL, NULL, &short_y) != KILN_OK) goto fail;
  kiln_array* mismatched[] = {ax, short_y};
  status = kiln_eval("x + y", 2, names, mismatched, aout, NULL);
  printf("\"x + y\" over (%lld,) and (%lld,): %s: %s\n", (long long)n, (long long)half, kiln_status_string(status),
         kiln_last_error());
  check(status == KILN_ERROR_SHAPE, "a shape error is KILN_ERROR_SHAPE");
  check(memcmp(snapshot, out, (size_t)n * sizeof *out) == 0, "failed calls left every element of out untouched");

  /* 4. Release everything: the handles, then the buffers that stayed ours. */
  printf("%s\n", failures ? "FAILED" : "all checks passed");
done:
  kiln_array_release(short_y); /* NULL is a no-op */
  kiln_array_release(total);
  kiln_array_release(aout);
  kiln_array_release(ay);
  kiln_array_release(ax); /* frees x through free_buffer */
  free(y);
  free(out);
  free(snapshot);
  return failures ? 1 : 0;
fail:
  failures++;
  goto done;
}
