/* sw_codec.c: not written yet */
typedef int sw_sw_codec_placeholder_t;
