/* A C program built against kiln by another Meson project (see meson.build). */
#include <kiln/kiln.h>

#include <math.h>
#include <stdio.h>

int main(void) {
  double a[1000], b[1000], out[1000];
  for (int i = 0; i < 1000; i++) a[i] = i * 0.5, b[i] = 1000 - i;
  int64_t n = 1000;
  kiln_array *ka, *kb, *kout;
  if (kiln_array_wrap(a, KILN_FLOAT64, 1, &n, NULL, NULL, NULL, &ka) ||
      kiln_array_wrap(b, KILN_FLOAT64, 1, &n, NULL, NULL, NULL, &kb) ||
      kiln_array_wrap(out, KILN_FLOAT64, 1, &n, NULL, NULL, NULL, &kout)) {
    fprintf(stderr, "kiln: %s\n", kiln_last_error());
    return 1;
  }
  const char* names[] = {"a", "b"};
  kiln_array* inputs[] = {ka, kb};
  kiln_status status = kiln_eval("sqrt(a*a + b*b)", 2, names, inputs, kout, NULL);
  kiln_array_release(ka);
  kiln_array_release(kb);
  kiln_array_release(kout);
  if (status != KILN_OK) {
    fprintf(stderr, "kiln: %s\n", kiln_last_error());
    return 1;
  }
  for (int i = 0; i < 1000; i++)
    if (!(fabs(out[i] - sqrt(a[i] * a[i] + b[i] * b[i])) <= 1e-12 * out[i])) return 1; /* NaN fails */
  printf("consumer-c: kiln %s, sqrt(a*a + b*b) checks out\n", kiln_version());
  return 0;
}
