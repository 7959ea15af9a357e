/*
** vec.h — dense float32 vectors in plain C (no Lua): cosine similarity
** and top-k search over a set (NPC memory, FAQ lookup). aigc.vec's C half.
*/
#ifndef AIGC_VEC_H
#define AIGC_VEC_H

#include <stddef.h>

/* Cosine similarity of a and b (dim values); 0 when either is all zeros. */
double aigc_vec_cosine (const float *a, const float *b, size_t dim);

/* Scales v to unit length (left as is when all zeros). */
void aigc_vec_normalize (float *v, size_t dim);

/*
** The k rows of `set` (n rows of dim values, each of unit length) most
** similar to the unit-length q: their indices (0-based) into idx and their
** cosine into score, best first (ties: the lower index first). Returns how
** many were found: min(k, n).
*/
size_t aigc_vec_topk (const float *set, size_t n, size_t dim, const float *q, size_t k,
                      size_t *idx, double *score);

#endif
