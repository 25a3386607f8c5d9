/* Decompression of qcow2 compressed clusters: raw deflate (zlib, no
 * header) or a zstd frame. The stored data is padded to whole sectors, so
 * decoding stops as soon as a full cluster has come out. */
#include "block/qcow2_int.h"

#include <zlib.h>
#include <zstd.h>

static int inflate_raw(const uint8_t *src, size_t slen, uint8_t *dst,
                       size_t dlen)
{
    z_stream z = {0};
    if (inflateInit2(&z, -15) != Z_OK) /* raw deflate, any window */
        return -1;
    z.next_in = (Bytef *)src;
    z.avail_in = (uInt)slen;
    z.next_out = dst;
    z.avail_out = (uInt)dlen;
    int r = inflate(&z, Z_FINISH);
    bool full = z.avail_out == 0;
    inflateEnd(&z);
    /* Z_BUF_ERROR with a full buffer: the trailing padding was not
     * needed. */
    return (r == Z_STREAM_END || r == Z_BUF_ERROR || r == Z_OK) && full ? 0
                                                                          : -1;
}

static int unzstd(const uint8_t *src, size_t slen, uint8_t *dst, size_t dlen)
{
    ZSTD_DStream *s = ZSTD_createDStream();
    if (!s)
        return -1;
    ZSTD_inBuffer in = {src, slen, 0};
    ZSTD_outBuffer out = {dst, dlen, 0};
    int ret = -1;
    for (;;) {
        size_t ip = in.pos, op = out.pos;
        size_t r = ZSTD_decompressStream(s, &out, &in);
        if (ZSTD_isError(r))
            break;
        if (out.pos == out.size) {
            ret = 0;
            break;
        }
        if (r == 0 || (in.pos == ip && out.pos == op))
            break; /* the frame ended short of a cluster, or no progress */
    }
    ZSTD_freeDStream(s);
    return ret;
}

int qcow2_decompress(int type, const uint8_t *src, size_t slen, uint8_t *dst,
                     size_t dlen)
{
    if (type == QCOW2_COMPRESS_ZSTD)
        return unzstd(src, slen, dst, dlen);
    return inflate_raw(src, slen, dst, dlen);
}
