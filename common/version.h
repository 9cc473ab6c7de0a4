/*
 * version — the version this build reports (--version, /health, the
 * User-Agent, release records).
 *
 * There is no version.c in the tree: the Makefile generates
 * $(BUILD)/gen/version-VERSION.c for each VERSION and links its object into
 * every program last, so building another version relinks the programs
 * instead of recompiling them.
 */
#ifndef TANDEM_VERSION_H
#define TANDEM_VERSION_H

/* "0.1.0", or the VERSION given to make; never NULL, never empty. */
const char *tandem_version(void);

#endif
