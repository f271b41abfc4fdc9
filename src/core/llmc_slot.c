/*
 * Redis Cluster key slots (see llmc_slot.h).
 */

#include "llmc_slot.h"

#include <string.h>


/* CRC16-CCITT (XMODEM): polynomial 0x1021, initial value 0, no reflection */

uint16_t
llmc_crc16(const char *buf, size_t len)
{
    int       i;
    size_t    n;
    uint16_t  crc = 0;

    for (n = 0; n < len; n++) {
        crc ^= (uint16_t) ((uint8_t) buf[n]) << 8;

        for (i = 0; i < 8; i++) {
            crc = (crc & 0x8000) ? (uint16_t) ((crc << 1) ^ 0x1021)
                                 : (uint16_t) (crc << 1);
        }
    }

    return crc;
}


unsigned
llmc_key_slot(const char *key, size_t len)
{
    const char  *open, *close;

    open = memchr(key, '{', len);

    if (open) {
        close = memchr(open + 1, '}', len - (open + 1 - key));

        if (close && close > open + 1) {
            return llmc_crc16(open + 1, close - open - 1) & (LLMC_SLOTS - 1);
        }
    }

    return llmc_crc16(key, len) & (LLMC_SLOTS - 1);
}
