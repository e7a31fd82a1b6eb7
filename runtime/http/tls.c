/* HTTPS certificates for libmicrohttpd: see tls.h.
 *
 * Each load makes a `cert` (the chain as gnutls_pcert_st, the key as a
 * gnutls_privkey_t). The current one is an atomic pointer read by the
 * handshake callback; a reload publishes a new one and keeps the old on a
 * list, freed only by tk_tls_free: a handshake that read the old pointer
 * may still be using it, and reloads are rare enough that keeping every
 * superseded certificate until shutdown costs nothing worth a refcount. */
#include "http/tls.h"

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CHAIN 16

typedef struct cert {
    gnutls_pcert_st chain[MAX_CHAIN];
    unsigned n;
    gnutls_privkey_t key;
    long long not_after;
    struct cert *older;
} cert;

struct tk_tls {
    char *cert_file, *key_file;
    _Atomic(cert *) current;
    pthread_mutex_t mu; /* serialises reloads; guards the list behind current */
};

static _Atomic(tk_tls *) in_use;

static void cert_free(cert *c)
{
    for (unsigned i = 0; i < c->n; i++)
        gnutls_pcert_deinit(&c->chain[i]);
    if (c->key)
        gnutls_privkey_deinit(c->key);
    free(c);
}

/* Loads both files; checks the key belongs to the first certificate (the
 * same check gnutls makes when a credentials structure is given the pair). */
static int load(const char *cert_file, const char *key_file, cert **out, char *err, size_t errlen)
{
    gnutls_certificate_credentials_t check = NULL;
    int g = gnutls_certificate_allocate_credentials(&check);
    if (g >= 0)
        g = gnutls_certificate_set_x509_key_file(check, cert_file, key_file, GNUTLS_X509_FMT_PEM);
    if (check)
        gnutls_certificate_free_credentials(check);
    if (g < 0) {
        tk_errf(err, errlen, "TLS_CERT_FILE %s / TLS_KEY_FILE %s: %s", cert_file, key_file,
                gnutls_strerror(g));
        return TK_ECONFIG;
    }
    gnutls_datum_t cdata = {NULL, 0}, kdata = {NULL, 0};
    cert *c = calloc(1, sizeof *c);
    if (c == NULL)
        return TK_ENOMEM;
    int rc = TK_ECONFIG;
    if ((g = gnutls_load_file(cert_file, &cdata)) < 0 ||
        (g = gnutls_load_file(key_file, &kdata)) < 0) {
        tk_errf(err, errlen, "cannot read the TLS files: %s", gnutls_strerror(g));
        goto out;
    }
    c->n = MAX_CHAIN;
    g = gnutls_pcert_list_import_x509_raw(c->chain, &c->n, &cdata, GNUTLS_X509_FMT_PEM, 0);
    if (g < 0) {
        c->n = 0;
        tk_errf(err, errlen, "TLS_CERT_FILE %s: %s (at most %d certificates)", cert_file,
                gnutls_strerror(g), MAX_CHAIN);
        goto out;
    }
    if ((g = gnutls_privkey_init(&c->key)) < 0 ||
        (g = gnutls_privkey_import_x509_raw(c->key, &kdata, GNUTLS_X509_FMT_PEM, NULL, 0)) < 0) {
        tk_errf(err, errlen, "TLS_KEY_FILE %s: %s", key_file, gnutls_strerror(g));
        goto out;
    }
    gnutls_x509_crt_t crt;
    if (gnutls_x509_crt_init(&crt) >= 0) {
        if (gnutls_x509_crt_import(crt, &c->chain[0].cert, GNUTLS_X509_FMT_DER) >= 0)
            c->not_after = (long long)gnutls_x509_crt_get_expiration_time(crt);
        gnutls_x509_crt_deinit(crt);
    }
    *out = c;
    c = NULL;
    rc = TK_OK;
out:
    gnutls_free(cdata.data);
    if (kdata.data) {
        memset(kdata.data, 0, kdata.size); /* the private key */
        gnutls_free(kdata.data);
    }
    if (c)
        cert_free(c);
    return rc;
}

int tk_tls_new(const char *cert_file, const char *key_file, tk_tls **out, char *err, size_t errlen)
{
    tk_tls *t = calloc(1, sizeof *t);
    if (t == NULL)
        return TK_ENOMEM;
    t->cert_file = strdup(cert_file);
    t->key_file = strdup(key_file);
    pthread_mutex_init(&t->mu, NULL);
    cert *c = NULL;
    int rc = t->cert_file && t->key_file ? load(cert_file, key_file, &c, err, errlen) : TK_ENOMEM;
    if (rc != TK_OK) {
        tk_tls_free(t);
        return rc;
    }
    atomic_store(&t->current, c);
    *out = t;
    return TK_OK;
}

int tk_tls_reload(tk_tls *t, char *err, size_t errlen)
{
    if (t == NULL)
        return TK_OK;
    cert *c = NULL;
    int rc = load(t->cert_file, t->key_file, &c, err, errlen);
    if (rc != TK_OK)
        return rc;
    pthread_mutex_lock(&t->mu);
    c->older = atomic_load(&t->current);
    atomic_store(&t->current, c);
    pthread_mutex_unlock(&t->mu);
    return TK_OK;
}

void tk_tls_use(tk_tls *t)
{
    atomic_store(&in_use, t);
}

int tk_tls_cert_callback(gnutls_session_t session, const gnutls_datum_t *req_ca_rdn, int nreqs,
                         const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
                         gnutls_pcert_st **pcert, unsigned int *pcert_length,
                         gnutls_privkey_t *privkey)
{
    (void)session;
    (void)req_ca_rdn;
    (void)nreqs;
    (void)pk_algos;
    (void)pk_algos_length;
    tk_tls *t = atomic_load(&in_use);
    cert *c = t ? atomic_load(&t->current) : NULL;
    if (c == NULL)
        return -1;
    *pcert = c->chain;
    *pcert_length = c->n;
    *privkey = c->key;
    return 0;
}

long long tk_tls_not_after(const tk_tls *t)
{
    cert *c = atomic_load(&((tk_tls *)t)->current);
    return c ? c->not_after : 0;
}

void tk_tls_free(tk_tls *t)
{
    if (t == NULL)
        return;
    if (atomic_load(&in_use) == t)
        atomic_store(&in_use, NULL);
    cert *c = atomic_load(&t->current);
    while (c) {
        cert *older = c->older;
        cert_free(c);
        c = older;
    }
    pthread_mutex_destroy(&t->mu);
    free(t->cert_file);
    free(t->key_file);
    free(t);
}
