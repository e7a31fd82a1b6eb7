/* HTTPS for the HTTP server (libmicrohttpd over GnuTLS): the certificate
 * and key from TLS_CERT_FILE / TLS_KEY_FILE, handed to each handshake by a
 * certificate callback, so a reload (SIGHUP) can put a renewed certificate
 * in place without restarting: handshakes after the swap get the new one,
 * connections already up keep theirs. */
#ifndef TK_HTTP_TLS_H
#define TK_HTTP_TLS_H

#include <gnutls/abstract.h>
#include <stddef.h>

#include "common.h"

typedef struct tk_tls tk_tls;

/* GnuTLS priorities for the HTTPS port: the library's defaults without TLS
 * 1.0 and 1.1. */
#define TK_TLS_PRIORITIES "NORMAL:-VERS-TLS1.0:-VERS-TLS1.1:-VERS-DTLS1.0"

/* Loads the PEM certificate chain and private key and checks that they
 * belong together. */
int tk_tls_new(const char *cert_file, const char *key_file, tk_tls **out, char *err,
               size_t errlen) TK_WUR;

/* Loads the files again (same paths) and makes them current. On failure
 * the current certificate stays and err says why. Thread-safe. */
int tk_tls_reload(tk_tls *t, char *err, size_t errlen) TK_WUR;

/* The callback for MHD_OPTION_HTTPS_CERT_CALLBACK. MHD passes it no user
 * data, so it serves the one tk_tls given to tk_tls_use (one HTTPS server
 * per process). */
int tk_tls_cert_callback(gnutls_session_t session, const gnutls_datum_t *req_ca_rdn, int nreqs,
                         const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
                         gnutls_pcert_st **pcert, unsigned int *pcert_length,
                         gnutls_privkey_t *privkey);
void tk_tls_use(tk_tls *t);

/* The certificate's notAfter (seconds since the epoch), for the log. */
long long tk_tls_not_after(const tk_tls *t);

/* Frees every certificate loaded (call after the server stopped). */
void tk_tls_free(tk_tls *t);

#endif
