/* Element-wise work over two threads: the caller's and one persistent worker.
 *
 * Why: at num_threads >= 2 OpenBLAS splits the larger matrix products over the
 * cores, but an element-wise pass (an optimizer update over a layer's weights)
 * stayed on one core, and on medium networks those passes are a large part of
 * what a step spends beyond its products. fb_split2 runs fn(ctx, 0, mid) on the
 * calling thread and fn(ctx, mid, n) on the worker, and returns when both are
 * done. Every element is computed by the same code whichever thread runs it,
 * so the result has the same bits at every thread count.
 *
 * The worker sleeps on a condition variable between jobs (no spinning: at 2
 * threads OpenBLAS's own workers need the other core right after). One caller
 * at a time owns it; a caller that finds it busy (another Python thread, e.g.
 * an Ensemble member) does the whole pass itself. After fork() the child has
 * no worker: the atfork handler resets the state so that the child starts its
 * own worker when it first needs one.
 *
 * Included by optim.pyx only, so the state below exists once per process.
 */
#ifndef FASTBP_SPLIT_H
#define FASTBP_SPLIT_H

#include <stddef.h>

/* Passes over fewer bytes than this (per array) stay on one thread: waking the
 * sleeping worker took 60-70 us on the 2-vCPU VM this was measured on, and the
 * split Adam update won from about 1.5 MB on (float32: 59 -> 105 us at 101,770
 * elements, 283 -> 241 us at 524,288, 906 -> 532 us at 1,863,690). */
#define FB_SPLIT_MIN_BYTES ((ptrdiff_t)1 << 21)
/* Split points are multiples of this many elements (64 bytes of float32), so
 * that each thread's part starts on its own cache line when the buffer does. */
#define FB_SPLIT_ALIGN ((ptrdiff_t)16)

typedef void (*fb_range_fn)(void* ctx, ptrdiff_t lo, ptrdiff_t hi);

#if defined(_WIN32)

/* No worker thread on Windows builds: the pass runs on the calling thread. */
static int fb_split_threads = 1;
static long long fb_split_count = 0;
static void fb_split2(fb_range_fn fn, void* ctx, ptrdiff_t n, ptrdiff_t elem_bytes) {
    (void)elem_bytes;
    fn(ctx, 0, n);
}

#else

#include <pthread.h>

static int fb_split_threads = 1;          /* 1: off; 2: split passes of >= FB_SPLIT_MIN_BYTES */

static pthread_mutex_t fb_split_owner = PTHREAD_MUTEX_INITIALIZER;  /* held by the caller */
static pthread_mutex_t fb_split_mu = PTHREAD_MUTEX_INITIALIZER;     /* guards the job */
static pthread_cond_t fb_split_job_cv = PTHREAD_COND_INITIALIZER;
static pthread_cond_t fb_split_done_cv = PTHREAD_COND_INITIALIZER;
static int fb_split_started = 0, fb_split_failed = 0, fb_split_atfork = 0;
static int fb_split_pending = 0, fb_split_done = 0;
static long long fb_split_count = 0;      /* passes run on two threads (for the tests) */
static fb_range_fn fb_split_fn;
static void* fb_split_ctx;
static ptrdiff_t fb_split_lo, fb_split_hi;

static void* fb_split_worker(void* unused) {
    (void)unused;
    pthread_mutex_lock(&fb_split_mu);
    for (;;) {
        while (!fb_split_pending)
            pthread_cond_wait(&fb_split_job_cv, &fb_split_mu);
        fb_split_pending = 0;
        pthread_mutex_unlock(&fb_split_mu);
        fb_split_fn(fb_split_ctx, fb_split_lo, fb_split_hi);
        pthread_mutex_lock(&fb_split_mu);
        fb_split_done = 1;
        pthread_cond_signal(&fb_split_done_cv);
    }
    return NULL;
}

/* In the child of a fork: no worker thread exists there, and the locks may have
 * been held by a thread that did not survive the fork. */
static void fb_split_after_fork_child(void) {
    pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t fresh_cv = PTHREAD_COND_INITIALIZER;
    fb_split_owner = fresh;
    fb_split_mu = fresh;
    fb_split_job_cv = fresh_cv;
    fb_split_done_cv = fresh_cv;
    fb_split_started = 0;
    fb_split_pending = 0;
    fb_split_done = 0;
}

/* Called with fb_split_owner held. 0 if the worker runs (or now started). */
static int fb_split_start(void) {
    pthread_t thread;
    pthread_attr_t attr;
    if (fb_split_started)
        return 0;
    if (fb_split_failed)
        return -1;
    if (!fb_split_atfork) {
        if (pthread_atfork(NULL, NULL, fb_split_after_fork_child) != 0) {
            fb_split_failed = 1;
            return -1;
        }
        fb_split_atfork = 1;
    }
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 1 << 16);
    if (pthread_create(&thread, &attr, fb_split_worker, NULL) != 0) {
        pthread_attr_destroy(&attr);
        fb_split_failed = 1;   /* e.g. a thread limit: stay on one thread for good */
        return -1;
    }
    pthread_attr_destroy(&attr);
    fb_split_started = 1;
    return 0;
}

static void fb_split2(fb_range_fn fn, void* ctx, ptrdiff_t n, ptrdiff_t elem_bytes) {
    ptrdiff_t mid;
    if (fb_split_threads < 2 || n < FB_SPLIT_MIN_BYTES / elem_bytes
            || pthread_mutex_trylock(&fb_split_owner) != 0) {
        fn(ctx, 0, n);
        return;
    }
    if (fb_split_start() != 0) {
        pthread_mutex_unlock(&fb_split_owner);
        fn(ctx, 0, n);
        return;
    }
    mid = (n / 2) / FB_SPLIT_ALIGN * FB_SPLIT_ALIGN;
    fb_split_count++;
    pthread_mutex_lock(&fb_split_mu);
    fb_split_fn = fn;
    fb_split_ctx = ctx;
    fb_split_lo = mid;
    fb_split_hi = n;
    fb_split_done = 0;
    fb_split_pending = 1;
    pthread_cond_signal(&fb_split_job_cv);
    pthread_mutex_unlock(&fb_split_mu);
    fn(ctx, 0, mid);
    pthread_mutex_lock(&fb_split_mu);
    while (!fb_split_done)
        pthread_cond_wait(&fb_split_done_cv, &fb_split_mu);
    pthread_mutex_unlock(&fb_split_mu);
    pthread_mutex_unlock(&fb_split_owner);
}

#endif

static void fb_split_set_threads(int n) { fb_split_threads = n >= 2 ? 2 : 1; }
static int fb_split_get_threads(void) { return fb_split_threads; }
static long long fb_split_get_count(void) { return fb_split_count; }

#endif
