/* LD_PRELOAD work-around for QEMU 7.2's COLO primary deadlock under TCG.
 *
 * colo_do_checkpoint_transaction() calls qemu_savevm_live_state() without
 * the BQL; TCG's bitmap-sync hook then does run_on_cpu(), i.e.
 * qemu_cond_wait(&qemu_work_cond, &qemu_global_mutex) on a mutex this thread
 * does not hold.  glibc "unlocks" it anyway and re-locks it on wake-up, so the
 * COLO thread silently ends up owning the BQL and later self-deadlocks.
 *
 * This shim changes pthread_cond_wait() only when the caller does NOT own the
 * mutex: lock it, wait at most 5 ms (a legal spurious wake-up: run_on_cpu
 * loops on its `done` flag), unlock again.  Every other call goes straight to
 * glibc.  It changes no byte on the wire.
 *
 * Second hole, same root: run_on_cpu() queues its work and kicks the vCPU
 * (pthread_cond_broadcast on cpu->halt_cond) without the BQL too.  The stopped
 * vCPU thread tests "any work?" and then sleeps on halt_cond, both under the
 * BQL; a kick that lands between the two is lost, the vCPU sleeps for good
 * and the COLO thread waits in migration_bitmap_sync forever (seen once in
 * ~1000 checkpoints: gdb shows "CPU 0/TCG" in qemu_wait_io_event and
 * "live_migration" in do_run_on_cpu).  So pthread_cond_broadcast() remembers,
 * per thread, the last condvar it broadcast since that thread last waited;
 * the not-owner path broadcasts it again once it holds the mutex, which is
 * how the kick should have been made.  An extra broadcast is always legal
 * (waiters re-check their predicate).
 * Build: gcc -shared -fPIC -O2 -o bqlshim.so bqlshim.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

typedef int (*wait_fn)(pthread_cond_t *, pthread_mutex_t *);
typedef int (*bcast_fn)(pthread_cond_t *);

static wait_fn real_wait;
static bcast_fn real_bcast;
static unsigned long uses;
static __thread pid_t my_tid;
static __thread pthread_cond_t *last_bcast;   /* since this thread last waited */

static wait_fn resolve(void)
{
    if (!real_wait) {
        /* the default (new-condvar) version; plain dlsym may return the
         * GLIBC_2.2.5 compat one */
        real_wait = (wait_fn)dlvsym(RTLD_NEXT, "pthread_cond_wait", "GLIBC_2.3.2");
        if (!real_wait)
            real_wait = (wait_fn)dlsym(RTLD_NEXT, "pthread_cond_wait");
    }
    return real_wait;
}

static bcast_fn resolve_bcast(void)
{
    if (!real_bcast) {
        real_bcast = (bcast_fn)dlvsym(RTLD_NEXT, "pthread_cond_broadcast", "GLIBC_2.3.2");
        if (!real_bcast)
            real_bcast = (bcast_fn)dlsym(RTLD_NEXT, "pthread_cond_broadcast");
    }
    return real_bcast;
}

int pthread_cond_broadcast(pthread_cond_t *cond)
{
    last_bcast = cond;
    return resolve_bcast()(cond);
}

int pthread_cond_wait(pthread_cond_t *cond, pthread_mutex_t *mutex)
{
    struct timespec ts;
    pthread_cond_t *kick = last_bcast;
    unsigned long n;
    int ret;

    last_bcast = NULL;
    if (!my_tid)
        my_tid = gettid();
    if (mutex->__data.__owner == my_tid)
        return resolve()(cond, mutex);

    n = __atomic_add_fetch(&uses, 1, __ATOMIC_RELAXED);
    if (n <= 5 || n % 100 == 0)
        fprintf(stderr, "bqlshim: pthread_cond_wait on a mutex not held by tid %d "
                "(use %lu): lock, wait <= 5 ms, unlock\n", (int)my_tid, n);
    pthread_mutex_lock(mutex);
    if (kick && kick != cond)
        resolve_bcast()(kick);          /* the kick, now under the mutex */
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_nsec += 5000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec += 1;
        ts.tv_nsec -= 1000000000;
    }
    ret = pthread_cond_clockwait(cond, mutex, CLOCK_MONOTONIC, &ts);
    pthread_mutex_unlock(mutex);
    return ret == ETIMEDOUT ? 0 : ret;
}
