/*
** vec_test.c — unit tests for src/vec.c's top-k: for every k, small (the
** sorted insertion) and large (the heap, k > 64, up to the whole set), the
** rows and scores are exactly a stable sort's (score descending, ties the
** lower row first). The rows' scores are exact binary fractions, so the
** expected order is known without float rounding, and ties are many.
*/
#include <stdlib.h>

#include "ctest.h"
#include "vec.h"

#define ROWS 3000
#define DIM 6

static float set[ROWS * DIM];
static double want_score[ROWS];
static size_t want_row[ROWS];

/* Fills the set with multiples of 1/8 in [-1/8, 1/8] (a row's dot with all
** ones: an exact multiple of 1/8 in [-0.75, 0.75]), and the expected
** ranking, by a stable insertion sort on (score descending, row). */
static void make_set (unsigned seed) {
  size_t r, d, i;
  srand(seed);
  for (r = 0; r < ROWS; r++) {
    double s = 0;
    for (d = 0; d < DIM; d++) {
      float v = (float)((rand() % 3) - 1) / 8.0f;
      set[r * DIM + d] = v;
      s += v;
    }
    i = r;
    while (i > 0 && want_score[i - 1] < s) {
      want_score[i] = want_score[i - 1];
      want_row[i] = want_row[i - 1];
      i--;
    }
    want_score[i] = s;
    want_row[i] = r;
  }
}

static int ranks_like_a_stable_sort (size_t k) {
  static const float q[DIM] = { 1, 1, 1, 1, 1, 1 };
  static size_t idx[ROWS];
  static double score[ROWS];
  size_t i, found = aigc_vec_topk(set, ROWS, DIM, q, k, idx, score);
  if (found != (k < ROWS ? k : ROWS))
    return 0;
  for (i = 0; i < found; i++)
    if (idx[i] != want_row[i] || score[i] != want_score[i])
      return 0;
  return 1;
}

TEST(every_k_ranks_like_a_stable_sort) {
  static const size_t ks[] = { 1, 2, 5, 63, 64, 65, 100, 1000, ROWS - 1, ROWS, ROWS + 7 };
  unsigned seed;
  size_t i;
  for (seed = 1; seed <= 3; seed++) {
    make_set(seed);
    for (i = 0; i < sizeof ks / sizeof ks[0]; i++)
      CHECK(ranks_like_a_stable_sort(ks[i]));
  }
}

TEST(one_row_and_k_zero) {
  static const float one[2] = { 0.6f, 0.8f }, q[2] = { 1, 0 };
  size_t idx[1];
  double score[1];
  CHECK(aigc_vec_topk(one, 1, 2, q, 0, idx, score) == 0);
  CHECK(aigc_vec_topk(one, 1, 2, q, 100, idx, score) == 1);
  CHECK(idx[0] == 0);
}

int main (void) {
  RUN(every_k_ranks_like_a_stable_sort);
  RUN(one_row_and_k_zero);
  return ctest_report("vec");
}
