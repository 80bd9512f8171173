#ifndef TOLLGATE_CCURL_SHIM_H
#define TOLLGATE_CCURL_SHIM_H
#include <curl/curl.h>

// Swift cannot call C variadic functions: one typed wrapper per argument type.

static inline CURLcode tg_easy_setopt_long(CURL *h, CURLoption o, long v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode tg_easy_setopt_string(CURL *h, CURLoption o, const char *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode tg_easy_setopt_pointer(CURL *h, CURLoption o, void *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode tg_easy_setopt_slist(CURL *h, CURLoption o, struct curl_slist *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode tg_easy_setopt_off_t(CURL *h, CURLoption o, curl_off_t v) { return curl_easy_setopt(h, o, v); }

typedef size_t (*tg_data_callback)(char *ptr, size_t size, size_t nmemb, void *userdata);
static inline CURLcode tg_easy_setopt_data_callback(CURL *h, CURLoption o, tg_data_callback cb) { return curl_easy_setopt(h, o, cb); }

static inline CURLcode tg_easy_getinfo_long(CURL *h, CURLINFO i, long *out) { return curl_easy_getinfo(h, i, out); }
static inline CURLcode tg_easy_getinfo_off_t(CURL *h, CURLINFO i, curl_off_t *out) { return curl_easy_getinfo(h, i, out); }
static inline CURLcode tg_easy_getinfo_pointer(CURL *h, CURLINFO i, void **out) { return curl_easy_getinfo(h, i, out); }

static inline CURLMcode tg_multi_setopt_long(CURLM *m, CURLMoption o, long v) { return curl_multi_setopt(m, o, v); }

static inline CURLcode tg_msg_result(CURLMsg *msg) { return msg->data.result; }

// The socket interface: curl says which sockets to watch and when to time out; we run epoll.
typedef int (*tg_socket_callback)(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp);
typedef int (*tg_timer_callback)(CURLM *multi, long timeout_ms, void *userp);
static inline CURLMcode tg_multi_setopt_socket_callback(CURLM *m, tg_socket_callback cb) { return curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, cb); }
static inline CURLMcode tg_multi_setopt_timer_callback(CURLM *m, tg_timer_callback cb) { return curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, cb); }
static inline CURLMcode tg_multi_setopt_pointer(CURLM *m, CURLMoption o, void *v) { return curl_multi_setopt(m, o, v); }
static inline CURLMcode tg_multi_socket_timeout(CURLM *m, int *running) { return curl_multi_socket_action(m, CURL_SOCKET_TIMEOUT, 0, running); }

// epoll through plain ints: struct epoll_event is packed, which Swift handles awkwardly.
// Every call reports failure; the ones that can be interrupted by a signal are retried on EINTR.
#include <errno.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>
/// 0, or -1 with errno set.
static inline int tg_epoll_watch(int ep, int op, int fd, unsigned events) {
    struct epoll_event ev = { .events = events, .data = { .fd = fd } };
    int r;
    do { r = epoll_ctl(ep, op, fd, &ev); } while (r < 0 && errno == EINTR);
    return r;
}
/// Waits for up to `max` (<= 256) events; fills parallel arrays of descriptors and curl's
/// CURL_CSELECT_* flags. A signal ends the wait early with 0 events (the caller recomputes its
/// timeout and waits again); -1 with errno set is a real failure.
static inline int tg_epoll_wait(int ep, int *fds, int *flags, int max, int timeout_ms) {
    struct epoll_event evs[256];
    int n = epoll_wait(ep, evs, max > 256 ? 256 : max, timeout_ms);
    if (n < 0 && errno == EINTR) return 0;
    for (int i = 0; i < n; i++) {
        fds[i] = evs[i].data.fd;
        flags[i] = ((evs[i].events & EPOLLIN) ? CURL_CSELECT_IN : 0) | ((evs[i].events & EPOLLOUT) ? CURL_CSELECT_OUT : 0)
                 | ((evs[i].events & (EPOLLERR | EPOLLHUP)) ? CURL_CSELECT_ERR : 0);
    }
    return n;
}
static inline unsigned tg_epoll_events_for_curl(int what) {
    return ((what & CURL_POLL_IN) ? EPOLLIN : 0) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0);
}
/// 0, or -1 with errno set. EAGAIN (the counter is full) is success: a wakeup is already pending.
static inline int tg_eventfd_signal(int fd) {
    uint64_t one = 1;
    ssize_t r;
    do { r = write(fd, &one, 8); } while (r < 0 && errno == EINTR);
    return (r == 8 || (r < 0 && errno == EAGAIN)) ? 0 : -1;
}
/// 0, or -1 with errno set. EAGAIN (nothing to read: already drained) is success.
static inline int tg_eventfd_drain(int fd) {
    uint64_t n;
    ssize_t r;
    do { r = read(fd, &n, 8); } while (r < 0 && errno == EINTR);
    return (r == 8 || (r < 0 && errno == EAGAIN)) ? 0 : -1;
}
static inline int tg_errno(void) { return errno; }
#endif
