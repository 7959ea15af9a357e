/*
** vec.c — cosine similarity and top-k over float32 vectors (vec.h).
**
** The set is stored normalized, so a similarity is one dot product; the
** top k are kept in a small array sorted by insertion (k is small: a few
** memories, a few FAQ answers), which beats a heap below k ~ 64.
*/
#include <math.h>

#include "vec.h"

static double dot (const float *a, const float *b, size_t dim) {
  /* Four accumulators: the additions pipeline (and vectorize at -O2). */
  float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  size_t i = 0;
  for (; i + 4 <= dim; i += 4) {
    s0 += a[i] * b[i];
    s1 += a[i + 1] * b[i + 1];
    s2 += a[i + 2] * b[i + 2];
    s3 += a[i + 3] * b[i + 3];
  }
  for (; i < dim; i++)
    s0 += a[i] * b[i];
  return (double)s0 + (double)s1 + (double)s2 + (double)s3;
}

/*
** The same in double: for norms and one-off cosines, where float32 values
** (up to 3.4e38) would overflow a float sum of squares to inf (or tiny ones
** underflow it to 0), and the vector come out all zeros or NaN. The top-k
** scan stays in float: its rows and query are unit vectors.
*/
static double dot_d (const float *a, const float *b, size_t dim) {
  double s = 0;
  size_t i;
  for (i = 0; i < dim; i++)
    s += (double)a[i] * (double)b[i];
  return s;
}

/*
** A cosine is in [-1, 1], but rounding puts a vector's with itself at
** 1.0000000000000002 (and a float dot of two unit vectors up to 1.00000003):
** acos() of that is NaN, and a "score <= 1" check fails. Clamped.
*/
static double clamp1 (double c) {
  return c > 1 ? 1 : c < -1 ? -1 : c;
}

double aigc_vec_cosine (const float *a, const float *b, size_t dim) {
  double na = dot_d(a, a, dim), nb = dot_d(b, b, dim);
  if (na <= 0 || nb <= 0)
    return 0;
  return clamp1(dot_d(a, b, dim) / (sqrt(na) * sqrt(nb)));
}

void aigc_vec_normalize (float *v, size_t dim) {
  double n = sqrt(dot_d(v, v, dim));
  size_t i;
  if (n <= 0)
    return;
  for (i = 0; i < dim; i++)
    v[i] = (float)(v[i] / n);
}

size_t aigc_vec_topk (const float *set, size_t n, size_t dim, const float *q, size_t k,
                      size_t *idx, double *score) {
  size_t row, found = 0;
  if (k > n)
    k = n;
  if (k == 0)
    return 0;
  for (row = 0; row < n; row++) {
    double s = dot(set + row * dim, q, dim);
    size_t j;
    if (found == k && !(s > score[k - 1]))
      continue;   /* not better than the worst kept (ties keep the lower index) */
    j = found < k ? found++ : k - 1;
    while (j > 0 && s > score[j - 1]) {
      score[j] = score[j - 1];
      idx[j] = idx[j - 1];
      j--;
    }
    score[j] = s;
    idx[j] = row;
  }
  for (row = 0; row < found; row++)
    score[row] = clamp1(score[row]);
  return found;
}
