/*  sw_tls.c: the HTTPS certificate and key, read and checked (see sw_tls.h). */
#include "sw_tls.h"

#include <errno.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sw_common.h"

/* Reads a whole regular file of at most SW_TLS_MAX_FILE bytes, NUL-terminated. */
static char *s_read(const char *what, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        sw_err(err, errlen, "%s %s: %s", what, path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        sw_err(err, errlen, "%s %s: %s", what, path, strerror(errno));
        fclose(f);
        return NULL;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > (off_t) SW_TLS_MAX_FILE || st.st_size == 0) {
        sw_err(err, errlen, "%s %s: %s", what, path,
               !S_ISREG(st.st_mode) ? "not a regular file" : st.st_size == 0 ? "empty" : "larger than 1 MiB");
        fclose(f);
        return NULL;
    }
    char *text = malloc((size_t) st.st_size + 1);
    const size_t n = text ? fread(text, 1, (size_t) st.st_size, f) : 0;
    fclose(f);
    if (!text || n != (size_t) st.st_size) {
        sw_err(err, errlen, "%s %s: %s", what, path, text ? "cannot read it whole" : "out of memory");
        free(text);
        return NULL;
    }
    text[n] = 0;
    if (strlen(text) != n || !strstr(text, "-----BEGIN ")) {
        sw_err(err, errlen, "%s %s: not PEM text (expected -----BEGIN ...)", what, path);
        free(text);
        return NULL;
    }
    return text;
}

void sw_tls_free_key(char **key_p)
{
    if (!key_p || !*key_p)
        return;
    volatile char *p = *key_p;
    for (size_t i = 0; p[i]; i++)
        p[i] = 0;
    free(*key_p);
    *key_p = NULL;
}

int sw_tls_load(const char *cert_path, const char *key_path, char **cert_pem, char **key_pem, char *err,
                size_t errlen)
{
    *cert_pem = *key_pem = NULL;
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
        sw_err(err, errlen, "--https-cert: this libmicrohttpd was built without TLS");
        return -1;
    }
    if (!cert_path || !key_path) {
        sw_err(err, errlen, "HTTPS needs both --https-cert and --https-key");
        return -1;
    }
    char *cert = s_read("--https-cert", cert_path, err, errlen);
    char *key = cert ? s_read("--https-key", key_path, err, errlen) : NULL;
    if (!key) {
        free(cert);
        return -1;
    }
    /* the same check GnuTLS makes when libmicrohttpd starts, with its own reason */
    gnutls_certificate_credentials_t cred = NULL;
    int rc = gnutls_certificate_allocate_credentials(&cred);
    if (rc == GNUTLS_E_SUCCESS) {
        const gnutls_datum_t c = {(unsigned char *) cert, (unsigned) strlen(cert)};
        const gnutls_datum_t k = {(unsigned char *) key, (unsigned) strlen(key)};
        rc = gnutls_certificate_set_x509_key_mem(cred, &c, &k, GNUTLS_X509_FMT_PEM);
        gnutls_certificate_free_credentials(cred);
    }
    if (rc < 0) {
        sw_err(err, errlen, "HTTPS: %s and %s: %s", cert_path, key_path,
               rc == GNUTLS_E_CERTIFICATE_KEY_MISMATCH ? "the key does not belong to the certificate"
                                                       : gnutls_strerror(rc));
        free(cert);
        sw_tls_free_key(&key);
        return -1;
    }
    *cert_pem = cert;
    *key_pem = key;
    return 0;
}
