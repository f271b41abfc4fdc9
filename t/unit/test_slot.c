/*
 * Redis Cluster key slots against values Redis itself gives (CLUSTER
 * KEYSLOT), and the hash tag rules.
 */

#include <string.h>

#include "tap.h"
#include "llmc_slot.h"

static unsigned
slot(const char *key)
{
    return llmc_key_slot(key, strlen(key));
}

int
main(void)
{
    /* the CRC16 check value of the XMODEM variant */
    is_int(llmc_crc16("123456789", 9), 0x31c3, "crc16(123456789)");

    is_int(slot("foo"), 12182, "slot of foo");
    is_int(slot("bar"), 5061, "slot of bar");
    is_int(slot("somekey"), 11058, "slot of somekey");
    is_int(slot(""), 0, "slot of the empty key");

    /* a hash tag decides the slot */
    is_int(slot("{user1000}.following"), 3443, "hash tag");
    is_int(slot("{user1000}.following"), slot("user1000"), "the tag alone");
    is_int(slot("{user1000}.followers"), slot("{user1000}.following"),
           "same tag, same slot");
    is_int(slot("llmc:{ab12}:e:00"), slot("ab12"), "llmc keys use the scope");
    is_int(slot("llmc:{ab12}:b:h256:3:ff"), slot("llmc:{ab12}:e:00"),
           "buckets share the entry's slot");

    /* an empty tag or an unclosed brace: the whole key */
    is_int(slot("foo{}{bar}"), 8363, "an empty first tag: the whole key");
    is_int(slot("foo{bar"), 15278, "unclosed brace: the whole key");
    is_int(slot("foo{{bar}}zap"), 4015, "the first { opens the tag");

    return done_testing();
}
