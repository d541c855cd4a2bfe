/* JPEG 2000 encoding with the vendored, patched OpenJPEG (docs/DECISIONS.md E14).
 *
 * shamisa_j2k_encode() writes a JP2 file (as Pillow does) of an 8-bit image with the encoder
 * settings that Pillow's JPEG 2000 plugin uses for
 *   Image.save(format="JPEG2000", quality_mode="rates", quality_layers=ratios,
 *              num_resolutions=n, progression="LRCP", irreversible=False)
 * (one tile, 64x64 code-blocks, no MCT, reversible 5/3, rate-mode layers, OpenJPEG's default
 * comment), so the codestream inside Pillow's JP2 file and this one carry the same packets.
 * The patched tier-1 coder stops each code-block once its codeword is longer than a byte
 * limit: first a tight one, then, where the rate allocator says that may have changed its
 * choice, the layer budget, then none (see openjpeg/t1.c).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "openjpeg.h"

/* From the patched openjpeg/t1.c (its header needs OpenJPEG's private types). */
void opj_t1_set_encode_stop_bytes(OPJ_UINT32 stop_bytes);
OPJ_UINT32 opj_t1_stop_unsafe(void);

#define SHAMISA_API __attribute__((visibility("default")))

typedef struct {
    uint8_t *data;
    size_t cap;
    size_t len;
    size_t pos;
    int overflow;
} mem_stream_t;

static OPJ_SIZE_T mem_write(void *buf, OPJ_SIZE_T n, void *user)
{
    mem_stream_t *s = (mem_stream_t *)user;
    if (s->pos + n > s->cap) {
        s->overflow = 1;
        return (OPJ_SIZE_T)-1;
    }
    memcpy(s->data + s->pos, buf, n);
    s->pos += n;
    if (s->pos > s->len) {
        s->len = s->pos;
    }
    return n;
}

static OPJ_OFF_T mem_skip(OPJ_OFF_T n, void *user)
{
    mem_stream_t *s = (mem_stream_t *)user;
    OPJ_OFF_T target = (OPJ_OFF_T)s->pos + n;
    if (target < 0 || (size_t)target > s->cap) {
        return -1;
    }
    s->pos = (size_t)target;
    if (s->pos > s->len) {
        s->len = s->pos;
    }
    return n;
}

static OPJ_BOOL mem_seek(OPJ_OFF_T n, void *user)
{
    mem_stream_t *s = (mem_stream_t *)user;
    if (n < 0 || (size_t)n > s->cap) {
        return OPJ_FALSE;
    }
    s->pos = (size_t)n;
    if (s->pos > s->len) {
        s->len = s->pos;
    }
    return OPJ_TRUE;
}

static long encode_once(const uint8_t *planar, int width, int height, int comps,
                        const float *ratios, int nlayers, int num_resolutions,
                        unsigned int stop_bytes, uint8_t *out, size_t cap, int *unsafe)
{
    opj_cparameters_t params;
    opj_image_cmptparm_t cparams[4];
    opj_image_t *image = NULL;
    opj_codec_t *codec = NULL;
    opj_stream_t *stream = NULL;
    mem_stream_t mem;
    long result = -2;
    int i;

    if (!planar || !out || width <= 0 || height <= 0 || comps < 1 || comps > 4 ||
            nlayers < 1 || nlayers > 100 || num_resolutions < 1) {
        return -1;
    }

    opj_set_default_encoder_parameters(&params);
    params.image_offset_x0 = 0;
    params.image_offset_y0 = 0;
    params.cp_tx0 = 0;
    params.cp_ty0 = 0;
    params.cp_tdx = 1;
    params.cp_tdy = 1;
    params.tcp_numlayers = nlayers;
    params.cp_disto_alloc = 1;
    params.cp_fixed_alloc = 0;
    params.cp_fixed_quality = 0;
    for (i = 0; i < nlayers; ++i) {
        params.tcp_rates[i] = ratios[i];
    }
    params.numresolution = num_resolutions;
    params.irreversible = 0;
    if (comps == 3) {
        params.tcp_mct = 0;
    }
    params.prog_order = OPJ_LRCP;
    params.cp_cinema = OPJ_OFF;
    params.cp_rsiz = OPJ_STD_RSIZ;

    memset(cparams, 0, sizeof(cparams));
    for (i = 0; i < comps; ++i) {
        cparams[i].dx = 1;
        cparams[i].dy = 1;
        cparams[i].w = (OPJ_UINT32)width;
        cparams[i].h = (OPJ_UINT32)height;
        cparams[i].x0 = 0;
        cparams[i].y0 = 0;
        cparams[i].prec = 8;
        cparams[i].sgnd = 0;
    }
    image = opj_image_create((OPJ_UINT32)comps, cparams,
                             comps >= 3 ? OPJ_CLRSPC_SRGB : OPJ_CLRSPC_GRAY);
    if (!image) {
        return -2;
    }
    image->x0 = 0;
    image->y0 = 0;
    image->x1 = (OPJ_UINT32)width;
    image->y1 = (OPJ_UINT32)height;

    codec = opj_create_compress(OPJ_CODEC_JP2);
    if (!codec || !opj_setup_encoder(codec, &params, image)) {
        goto done;
    }

    mem.data = out;
    mem.cap = cap;
    mem.len = 0;
    mem.pos = 0;
    mem.overflow = 0;
    stream = opj_stream_create(OPJ_J2K_STREAM_CHUNK_SIZE, OPJ_FALSE);
    if (!stream) {
        goto done;
    }
    opj_stream_set_user_data(stream, &mem, NULL);
    opj_stream_set_write_function(stream, mem_write);
    opj_stream_set_skip_function(stream, mem_skip);
    opj_stream_set_seek_function(stream, mem_seek);

    opj_t1_set_encode_stop_bytes(stop_bytes);
    if (opj_start_compress(codec, image, stream) &&
            opj_write_tile(codec, 0, (OPJ_BYTE *)planar,
                           (OPJ_UINT32)((size_t)width * (size_t)height * (size_t)comps), stream) &&
            opj_end_compress(codec, stream)) {
        result = (long)mem.len;
    }
    *unsafe = (int)opj_t1_stop_unsafe();
    opj_t1_set_encode_stop_bytes(0);
    if (mem.overflow) {
        result = -3;
    }

done:
    if (stream) {
        opj_stream_destroy(stream);
    }
    if (codec) {
        opj_destroy_codec(codec);
    }
    opj_image_destroy(image);
    return result;
}

/* Encode a planar 8-bit image (comps planes of height x width bytes, one after the other).
 * ratios: nlayers compression ratios (rate mode). Tier-1 coding stops at first_stop bytes per
 * code-block; where the rate allocator cannot rule out that passes not coded would have been
 * chosen (see openjpeg/t1.c), the image is encoded again with safe_stop bytes, and, if that is
 * not enough either, with no limit at all (upstream OpenJPEG's own encode). *extra receives
 * the number of further encodes (0, 1 or 2). Returns the file length written to out (at most
 * cap bytes), -1 on bad arguments, -2 if OpenJPEG fails, -3 if cap is too small.
 */
SHAMISA_API long shamisa_j2k_encode(const uint8_t *planar, int width, int height, int comps,
                                    const float *ratios, int nlayers, int num_resolutions,
                                    unsigned int first_stop, unsigned int safe_stop,
                                    uint8_t *out, size_t cap, int *extra)
{
    unsigned int stops[3];
    int nstops = 0, i, unsafe = 0;
    long n = -1;

    stops[nstops++] = first_stop;
    if (safe_stop && safe_stop != first_stop) {
        stops[nstops++] = safe_stop;
    }
    if (stops[nstops - 1] != 0) {
        stops[nstops++] = 0;
    }
    *extra = 0;
    for (i = 0; i < nstops; ++i) {
        n = encode_once(planar, width, height, comps, ratios, nlayers, num_resolutions,
                        stops[i], out, cap, &unsafe);
        if (n <= 0 || !unsafe) {
            break;
        }
        *extra = i + 1;
    }
    return n;
}
