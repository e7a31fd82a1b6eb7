/* Address ranges: a comma list of IPv4/IPv6 addresses and CIDR blocks
 * ("10.0.0.0/8, 127.0.0.1, ::1, fd00::/8"), parsed once, then matched
 * against client addresses. IPv4 is kept as IPv4-mapped IPv6, so
 * "::ffff:10.1.2.3" matches "10.0.0.0/8" too. Used for TRUST_PROXY. */
#ifndef TK_HTTP_CIDR_H
#define TK_HTTP_CIDR_H

#include <stddef.h>

#include "common.h"

typedef struct tk_cidr_list tk_cidr_list;

/* Parses `s`. An empty or NULL s gives an empty list. A malformed entry is
 * TK_EINVAL with the entry named in err; the host bits of a block must be
 * zero ("10.0.0.1/8" is refused: it is probably a typo). On success *out is
 * owned by the caller (tk_cidr_list_free). Returns 0, TK_EINVAL or
 * TK_ENOMEM. */
int tk_cidr_list_parse(const char *s, tk_cidr_list **out, char *err, size_t errlen) TK_WUR;

void tk_cidr_list_free(tk_cidr_list *l);

/* Returns 1 when the address text `addr` (IPv4 or IPv6, no port, no
 * brackets) falls in one of the list's blocks, else 0 (also for NULL l or a
 * malformed addr). */
int tk_cidr_list_match(const tk_cidr_list *l, const char *addr);

/* The number of blocks in the list. */
size_t tk_cidr_list_count(const tk_cidr_list *l);

#endif
