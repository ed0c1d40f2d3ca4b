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

static wait_fn real_wait;
static unsigned long uses;
static __thread pid_t my_tid;

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

int pthread_cond_wait(pthread_cond_t *cond, pthread_mutex_t *mutex)
{
    struct timespec ts;
    unsigned long n;
    int ret;

    if (!my_tid)
        my_tid = gettid();
    if (mutex->__data.__owner == my_tid)
        return resolve()(cond, mutex);

    n = __atomic_add_fetch(&uses, 1, __ATOMIC_RELAXED);
    if (n <= 5 || n % 100 == 0)
        fprintf(stderr, "bqlshim: pthread_cond_wait on a mutex not held by tid %d "
                "(use %lu): lock, wait <= 5 ms, unlock\n", (int)my_tid, n);
    pthread_mutex_lock(mutex);
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
