/*
 * libFuzzer target for the stream replay of a stored answer.  The first
 * byte picks include_usage, the api (chat completions or Anthropic
 * messages) and the piece size; the rest is the stored answer.  Checked: whatever the replay from the stored text writes,
 * the replay from jansson's tree writes too, byte for byte (the text path
 * declines what it does not take, and then the tree replays it or says
 * why not); llmc_stream_replay() gives the tree's answer.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "llmc_stream.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char        *buf, *any, *tree, *text, err[256];
    size_t       any_len = 0, tree_len = 0, text_len = 0, chunk;
    int          usage;
    llmc_api_e   api;

    if (size < 1 || size > 65536) {
        return 0;
    }
    usage = data[0] & 1;
    api = data[0] & 2 ? LLMC_API_MESSAGES : LLMC_API_CHAT;
    chunk = data[0] >> 2;
    data++;
    size--;

    /* an exact-size copy, so reads past the end are caught */
    buf = malloc(size ? size : 1);
    if (buf == NULL) {
        return 0;
    }
    memcpy(buf, data, size);

    any = llmc_stream_replay(api, buf, size, usage, chunk,
                             &any_len, err, sizeof(err));
    tree = llmc_stream_replay_by(LLMC_REPLAY_TREE, api, buf, size,
                                 usage, chunk, &tree_len, err, sizeof(err));
    text = llmc_stream_replay_by(LLMC_REPLAY_TEXT, api, buf, size,
                                 usage, chunk, &text_len, err, sizeof(err));
    if ((any == NULL) != (tree == NULL)
        || (any != NULL
            && (any_len != tree_len || memcmp(any, tree, any_len) != 0))
        || (text != NULL
            && (tree == NULL || text_len != tree_len
                || memcmp(text, tree, text_len) != 0)))
    {
        abort();
    }
    free(any);
    free(tree);
    free(text);
    free(buf);
    return 0;
}
