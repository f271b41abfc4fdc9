/*
 * Redis Cluster key slots: CRC16 (XMODEM) of the key's hash tag (the part
 * between the first "{" and the next "}", when not empty) or of the whole
 * key, modulo 16384 — as Redis computes them.
 */

#ifndef LLMC_SLOT_H
#define LLMC_SLOT_H

#include <stddef.h>
#include <stdint.h>

#define LLMC_SLOTS  16384

uint16_t llmc_crc16(const char *buf, size_t len);
unsigned llmc_key_slot(const char *key, size_t len);

#endif /* LLMC_SLOT_H */
