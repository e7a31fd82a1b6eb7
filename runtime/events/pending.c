/* The pending list (pending.h): a singly linked FIFO of copied messages.
 * Sequences and deadlines only grow along it, so every way out takes a
 * prefix of the list; a batch is that detached prefix (its first node). */
#include "events/pending.h"

#include <stdlib.h>
#include <string.h>

typedef struct tk_pending_batch msg;

struct tk_pending_batch {
    msg *next;
    uint64_t seq;
    int64_t deadline_ms;
    tk_event ev; /* room, arg and data point into buf */
    char buf[];
};

struct tk_pending {
    msg *head, *tail;
    size_t n;
};

tk_pending *tk_pending_new(void)
{
    return calloc(1, sizeof(tk_pending));
}

static void free_msgs(msg *m)
{
    while (m) {
        msg *next = m->next;
        free(m);
        m = next;
    }
}

void tk_pending_free(tk_pending *p)
{
    if (p == NULL)
        return;
    free_msgs(p->head);
    free(p);
}

int tk_pending_add(tk_pending *p, uint64_t seq, const tk_event *m, int64_t deadline_ms)
{
    if (seq == 0 || (p->tail && seq <= p->tail->seq))
        return TK_EINVAL;
    size_t rl = strlen(m->room) + 1, al = strlen(m->arg) + 1;
    msg *e = malloc(sizeof *e + rl + al + m->data_len);
    if (e == NULL)
        return TK_ENOMEM;
    e->next = NULL;
    e->seq = seq;
    /* deadlines stay in list order even if a caller's clock hiccups */
    e->deadline_ms =
        p->tail && deadline_ms < p->tail->deadline_ms ? p->tail->deadline_ms : deadline_ms;
    memcpy(e->buf, m->room, rl);
    memcpy(e->buf + rl, m->arg, al);
    if (m->data_len)
        memcpy(e->buf + rl + al, m->data, m->data_len);
    e->ev = (tk_event){.kind = m->kind,
                       .room = e->buf,
                       .arg = e->buf + rl,
                       .data = e->buf + rl + al,
                       .data_len = m->data_len};
    if (p->tail)
        p->tail->next = e;
    else
        p->head = e;
    p->tail = e;
    p->n++;
    return TK_OK;
}

/* Detaches the first `count` messages as a batch (NULL when count is 0). */
static tk_pending_batch *take_prefix(tk_pending *p, size_t count)
{
    if (count == 0)
        return NULL;
    msg *first = p->head, *last = first;
    for (size_t i = 1; i < count; i++)
        last = last->next;
    p->head = last->next;
    if (p->head == NULL)
        p->tail = NULL;
    last->next = NULL;
    p->n -= count;
    return first;
}

tk_pending_batch *tk_pending_seen(tk_pending *p, uint64_t seq)
{
    size_t count = 0;
    for (msg *m = p->head; m && m->seq <= seq; m = m->next)
        count++;
    return take_prefix(p, count);
}

tk_pending_batch *tk_pending_expired(tk_pending *p, int64_t now_ms)
{
    size_t count = 0;
    for (msg *m = p->head; m && m->deadline_ms <= now_ms; m = m->next)
        count++;
    return take_prefix(p, count);
}

tk_pending_batch *tk_pending_take_all(tk_pending *p)
{
    return take_prefix(p, p->n);
}

int64_t tk_pending_next_deadline(const tk_pending *p)
{
    return p->head ? p->head->deadline_ms : -1;
}

size_t tk_pending_count(const tk_pending *p)
{
    return p->n;
}

size_t tk_pending_batch_deliver(tk_pending_batch *b, void (*fn)(void *arg, const tk_event *m),
                                void *arg)
{
    size_t n = 0;
    while (b) {
        msg *next = b->next;
        fn(arg, &b->ev);
        free(b);
        b = next;
        n++;
    }
    return n;
}

size_t tk_pending_batch_count(const tk_pending_batch *b)
{
    size_t n = 0;
    for (; b; b = b->next)
        n++;
    return n;
}

void tk_pending_batch_events(const tk_pending_batch *b, tk_event *out)
{
    for (size_t i = 0; b; b = b->next)
        out[i++] = b->ev;
}

size_t tk_pending_batch_free(tk_pending_batch *b)
{
    size_t n = 0;
    while (b) {
        msg *next = b->next;
        free(b);
        b = next;
        n++;
    }
    return n;
}
