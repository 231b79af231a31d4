/*  sw_tls.h: the HTTPS certificate and key of the gateway's HTTP front.
 *
 *  libmicrohttpd serves TLS through GnuTLS (MHD_USE_TLS with the PEM text
 *  of the certificate chain and of its private key in memory). This file
 *  reads the two files and checks them before the server starts, so each
 *  mistake gets its own message rather than libmicrohttpd's one "cannot
 *  start": a missing or unreadable file, a file too large, text that is not
 *  PEM, a key that does not belong to the certificate, a libmicrohttpd built
 *  without TLS.
 *
 *  Thread safety: reentrant.
 */
#ifndef SW_TLS_H
#define SW_TLS_H

#include <stddef.h>

#define SW_TLS_MAX_FILE (1u << 20) /* bytes of a certificate chain or key file */

/*  Reads cert_path (PEM certificate chain, leaf first) and key_path (its
 *  PEM private key) into *cert_pem and *key_pem (NUL-terminated; caller
 *  frees both; the key's memory is wiped by sw_tls_free_key) and checks
 *  that GnuTLS accepts the pair. Returns 0, or -1 with a reason in err
 *  naming the file (both outputs NULL then). */
int sw_tls_load(const char *cert_path, const char *key_path, char **cert_pem, char **key_pem, char *err,
                size_t errlen);

/*  Wipes and frees a key read by sw_tls_load; accepts NULL and *key_p == NULL; sets *key_p = NULL. */
void sw_tls_free_key(char **key_p);

#endif
