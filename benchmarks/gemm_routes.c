/* The matrix products of one training step, timed through one BLAS library.
 *
 * Used by blas_routes.py (which compiles and runs it); see there. Usage:
 *   gemm_routes LIB PREFIX ILP64 DTYPE BATCH SIZES...
 * LIB is a shared library, PREFIX its symbol prefix ("scipy_" for the OpenBLAS of
 * NumPy's, SciPy's and the scipy-openblas32 wheels; "bli" for BLIS's typed API),
 * ILP64 1 for 64-bit integer arguments, DTYPE s or d. For every layer of SIZES: the
 * forward X.W, then backward dW = A^T.dZ and (except the first layer) dX = dZ.W^T,
 * all row-major, into preallocated outputs. Prints the median microseconds of 15
 * repeats of a loop of at least 20 ms; the thread count comes from NTH (default 1).
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <stdint.h>
typedef void (*gemm_fn)(const char*, const char*, const void*, const void*, const void*,
                        const void*, const void*, const void*, const void*, const void*,
                        const void*, void*, const void*);
static gemm_fn g; static int i64; static int dbl;
typedef void (*bli_fn)(int, int, int64_t, int64_t, int64_t, const void*, const void*, int64_t, int64_t,
                       const void*, int64_t, int64_t, const void*, void*, int64_t, int64_t);
static bli_fn bg;
static void call(char ta, char tb, long m, long n, long k, void* A, long lda, void* B, long ldb, void* C, long ldc) {
  double one = 1.0, zero = 0.0; float onef = 1.0f, zerof = 0.0f;
  int32_t M=m,N=n,K=k,LA=lda,LB=ldb,LC=ldc; int64_t M8=m,N8=n,K8=k,LA8=lda,LB8=ldb,LC8=ldc;
  const void *pm = i64 ? (void*)&M8 : (void*)&M, *pn = i64 ? (void*)&N8 : (void*)&N, *pk = i64 ? (void*)&K8 : (void*)&K;
  const void *pa = i64 ? (void*)&LA8 : (void*)&LA, *pb = i64 ? (void*)&LB8 : (void*)&LB, *pc = i64 ? (void*)&LC8 : (void*)&LC;
  g(&ta, &tb, pm, pn, pk, dbl ? (void*)&one : (void*)&onef, A, pa, B, pb, dbl ? (void*)&zero : (void*)&zerof, C, pc);
}
// row-major C[r x c] = op(A) op(B): column-major C^T = op(B)^T op(A)^T
static void rm(int ta, int tb, long r, long c, long k, void* A, void* B, void* C) {
  if (bg) { double one = 1.0, zero = 0.0; float onef = 1.0f, zerof = 0.0f;
    /* row-major operands as stored: A is (ta ? k x r : r x k), B (tb ? c x k : k x c) */
    bg(ta ? 8 : 0, tb ? 8 : 0, r, c, k, dbl ? (void*)&one : (void*)&onef, A, ta ? r : k, 1, B, tb ? k : c, 1,
       dbl ? (void*)&zero : (void*)&zerof, C, c, 1); return; }
  long lda = ta ? r : k, ldb = tb ? k : c;
  call(tb ? 'T' : 'N', ta ? 'T' : 'N', c, r, k, B, ldb, A, lda, C, c);
}
static double now(void){struct timespec t; clock_gettime(CLOCK_MONOTONIC,&t); return t.tv_sec+t.tv_nsec*1e-9;}
static int cmp(const void*a,const void*b){double x=*(double*)a,y=*(double*)b;return (x>y)-(x<y);}
int main(int argc, char** argv) {
  void* h = dlopen(argv[1], RTLD_LAZY | RTLD_LOCAL); if (!h) { fprintf(stderr, "%s\n", dlerror()); return 1; }
  char name[64]; dbl = argv[4][0] == 'd'; snprintf(name, 64, "%s%cgemm_%s", argv[2], dbl ? 'd' : 's', argc > 0 && strcmp(argv[3],"1")==0 && strstr(argv[1],"64_") ? "64_" : "");
  i64 = atoi(argv[3]);
  if (strcmp(argv[2], "bli") == 0) { bg = (bli_fn)dlsym(h, dbl ? "bli_dgemm" : "bli_sgemm"); void (*st)(int64_t) = (void(*)(int64_t))dlsym(h, "bli_thread_set_num_threads");
    int nth = getenv("NTH") ? atoi(getenv("NTH")) : 1; st(nth); goto ready; }
  g = (gemm_fn)dlsym(h, name); if (!g) { fprintf(stderr, "no %s\n", name); return 1; }
  { char tn[64]; snprintf(tn, 64, "%sopenblas_set_num_threads%s", argv[2], strstr(argv[1],"64_") ? "64_" : "");
  void (*snt)(int) = (void(*)(int))dlsym(h, tn); int nth = getenv("NTH") ? atoi(getenv("NTH")) : 1; if (snt) snt(nth); else fprintf(stderr,"no %s\n",tn); }
  ready:;
  long n = atol(argv[5]); int L = argc - 7; long* s = malloc(sizeof(long) * (L + 1));
  for (int i = 0; i <= L; i++) s[i] = atol(argv[6 + i]);
  size_t es = dbl ? 8 : 4; void **W = malloc(sizeof(void*) * L), **G = malloc(sizeof(void*) * L), **Ac = malloc(sizeof(void*) * (L + 1)), **D = malloc(sizeof(void*) * (L + 1));
  for (int i = 0; i < L; i++) { W[i] = calloc(s[i] * s[i + 1], es); G[i] = calloc(s[i] * s[i + 1], es); }
  for (int i = 0; i <= L; i++) { Ac[i] = calloc(n * s[i], es); D[i] = calloc(n * s[i], es); }
  for (int i = 0; i <= L; i++) for (long j = 0; j < n * s[i]; j++) { if (dbl) ((double*)Ac[i])[j] = (j % 7) * 0.1; else ((float*)Ac[i])[j] = (j % 7) * 0.1f; }
  double t0 = now(); int loops = 1; 
  for (;;) { double a = now(); for (int q = 0; q < loops; q++) {
      for (int i = 0; i < L; i++) rm(0, 0, n, s[i + 1], s[i], Ac[i], W[i], Ac[i + 1]);
      for (int i = L - 1; i >= 0; i--) { rm(1, 0, s[i], s[i + 1], n, Ac[i], Ac[i + 1], G[i]); if (i > 0) rm(0, 1, n, s[i], s[i + 1], Ac[i + 1], W[i], D[i]); } }
    if (now() - a > 0.02 || loops > 1e6) break; loops *= 2; }
  double ts[15];
  for (int r = 0; r < 15; r++) { double a = now(); for (int q = 0; q < loops; q++) {
      for (int i = 0; i < L; i++) rm(0, 0, n, s[i + 1], s[i], Ac[i], W[i], Ac[i + 1]);
      for (int i = L - 1; i >= 0; i--) { rm(1, 0, s[i], s[i + 1], n, Ac[i], Ac[i + 1], G[i]); if (i > 0) rm(0, 1, n, s[i], s[i + 1], Ac[i + 1], W[i], D[i]); } }
    ts[r] = (now() - a) / loops * 1e6; }
  qsort(ts, 15, sizeof(double), cmp); printf("%.2f\n", ts[7]); (void)t0; return 0;
}
