/*
** vec.c — cosine similarity and top-k over float32 vectors (vec.h).
**
** The set is stored normalized, so a similarity is one dot product; the
** top k are kept in a small array sorted by insertion (k is mostly small: a
** few memories, a few FAQ answers), which beats a heap below k ~ 64, and
** in a heap above.
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

/*
** Whether the candidate (sa, ra) ranks below (sb, rb): a lower score, or an
** equal one at a later row (ties keep the lower index); a NaN below every
** number (a heap's order must be total, and NaN compares false).
*/
static int below (double sa, size_t ra, double sb, size_t rb) {
  int na = sa != sa, nb = sb != sb;
  if (na != nb)
    return na;
  if (!na && sa != sb)
    return sa < sb;
  return ra > rb;
}

/* Moves entry i of the heap of `len` (lowest-ranked at the root) down to its place. */
static void sift_down (size_t *idx, double *score, size_t i, size_t len) {
  for (;;) {
    size_t low = i, l = 2 * i + 1, r = l + 1;
    double ts;
    size_t ti;
    if (l < len && below(score[l], idx[l], score[low], idx[low]))
      low = l;
    if (r < len && below(score[r], idx[r], score[low], idx[low]))
      low = r;
    if (low == i)
      return;
    ts = score[i], score[i] = score[low], score[low] = ts;
    ti = idx[i], idx[i] = idx[low], idx[low] = ti;
    i = low;
  }
}

/*
** A large k (a whole store ranked, k = n) by insertion would move up to k
** entries a row: quadratic, 1.3 s for 80,000 rows. A heap of the k best,
** its lowest-ranked at the root, costs log k a row; heapsort orders it.
*/
static size_t topk_heap (const float *set, size_t n, size_t dim, const float *q, size_t k,
                         size_t *idx, double *score) {
  size_t row, len = 0, end;
  for (row = 0; row < n; row++) {
    double s = dot(set + row * dim, q, dim);
    size_t i;
    if (len == k) {
      if (!below(score[0], idx[0], s, row))
        continue;
      score[0] = s, idx[0] = row;
      sift_down(idx, score, 0, len);
      continue;
    }
    i = len++;   /* sift up */
    while (i > 0 && below(s, row, score[(i - 1) / 2], idx[(i - 1) / 2])) {
      score[i] = score[(i - 1) / 2], idx[i] = idx[(i - 1) / 2];
      i = (i - 1) / 2;
    }
    score[i] = s, idx[i] = row;
  }
  for (end = len; end > 1; end--) {   /* the lowest-ranked to the end: best first */
    double ts = score[0];
    size_t ti = idx[0];
    score[0] = score[end - 1], idx[0] = idx[end - 1];
    score[end - 1] = ts, idx[end - 1] = ti;
    sift_down(idx, score, 0, end - 1);
  }
  return len;
}

/* Below this k, insertion into a sorted array beats a heap (few moves, no branches to mispredict). */
#define TOPK_INSERTION_MAX 64

size_t aigc_vec_topk (const float *set, size_t n, size_t dim, const float *q, size_t k,
                      size_t *idx, double *score) {
  size_t row, found = 0;
  if (k > n)
    k = n;
  if (k == 0)
    return 0;
  if (k > TOPK_INSERTION_MAX)
    found = topk_heap(set, n, dim, q, k, idx, score);
  else
    for (row = 0; row < n; row++) {
      double s = dot(set + row * dim, q, dim);
      size_t j;
      if (found == k && !below(score[k - 1], idx[k - 1], s, row))
        continue;   /* not better than the worst kept (ties keep the lower index) */
      j = found < k ? found++ : k - 1;
      while (j > 0 && below(score[j - 1], idx[j - 1], s, row)) {
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
