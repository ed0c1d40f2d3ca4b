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
 * ~700 checkpoints on a busy host: gdb shows "CPU 0/TCG" in qemu_wait_io_event and
 * "live_migration" in do_run_on_cpu).  So pthread_cond_broadcast() remembers,
 * per thread, the last condvar it broadcast and when; the not-owner path, once
 * it holds the mutex, broadcasts it again if that was less than 100 ms ago (in
 * run_on_cpu the kick precedes the wait by microseconds, more only if the
 * thread is preempted; an older pointer is never used, so a condvar destroyed
 * long since cannot be touched).  That is how
 * the kick should have been made.  An extra broadcast is always legal
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
static __thread pthread_cond_t *last_bcast;   /* this thread's last broadcast ... */
static __thread struct timespec last_bcast_at; /* ... and when (CLOCK_MONOTONIC) */
#define KICK_WINDOW_NS 100000000L              /* a kick older than 100 ms is not re-sent */

/* libc's default (new-condvar) version of a pthread_cond_* function; plain
 * dlsym may return the GLIBC_2.2.5 compat one */
static void *libc_sym(const char *name)
{
    void *fn = dlvsym(RTLD_NEXT, name, "GLIBC_2.3.2");

    return fn ? fn : dlsym(RTLD_NEXT, name);
}

static wait_fn resolve(void)
{
    if (!real_wait)
        real_wait = (wait_fn)libc_sym("pthread_cond_wait");
    return real_wait;
}

static bcast_fn resolve_bcast(void)
{
    if (!real_bcast)
        real_bcast = (bcast_fn)libc_sym("pthread_cond_broadcast");
    return real_bcast;
}

__attribute__((constructor)) static void bqlshim_init(void)
{
    if (!resolve() || !resolve_bcast()) {
        fprintf(stderr, "bqlshim: cannot find pthread_cond_wait/broadcast in libc\n");
        _exit(127);
    }
}

int pthread_cond_broadcast(pthread_cond_t *cond)
{
    last_bcast = cond;
    clock_gettime(CLOCK_MONOTONIC, &last_bcast_at);
    return resolve_bcast()(cond);
}

/* the condvar this thread broadcast less than KICK_WINDOW_NS ago, or NULL */
static pthread_cond_t *recent_kick(void)
{
    struct timespec now;
    long ns;

    if (!last_bcast)
        return NULL;
    clock_gettime(CLOCK_MONOTONIC, &now);
    ns = (now.tv_sec - last_bcast_at.tv_sec) * 1000000000L
         + (now.tv_nsec - last_bcast_at.tv_nsec);
    return ns >= 0 && ns < KICK_WINDOW_NS ? last_bcast : NULL;
}

int pthread_cond_wait(pthread_cond_t *cond, pthread_mutex_t *mutex)
{
    struct timespec ts;
    pthread_cond_t *kick = recent_kick();
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
