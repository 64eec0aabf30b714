/*
 * The pki statement both daemons have: "pki NAME cert|key|ca FILE".
 * The parent reads the files (PEM) when it checks the configuration;
 * children get the statements without touching the filesystem, and the
 * PEM from the parent by IPC.
 */
#ifndef PKI_H
#define PKI_H

#include <sys/queue.h>

#include <stddef.h>

#include "conf.h"

#define PEM_MAX		(1024 * 1024)

struct pki {
	TAILQ_ENTRY(pki)	 entry;
	char			*name;
	char			*cert_file, *key_file, *ca_file;
	char			*cert, *key, *ca;	/* PEM, parent only */
	size_t			 cert_len, key_len, ca_len;
};

TAILQ_HEAD(pki_list, pki);

/* After the keyword "pki": NAME cert|key|ca FILE. */
void		 pki_parse(struct conf *, struct pki_list *);
struct pki	*pki_lookup(struct pki_list *, const char *);
void		 pki_list_free(struct pki_list *);

#endif
