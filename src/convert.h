/* convert.h - what the converter (convert.c) and the re-quantizer (quantize.c) share. */
#ifndef G8_CONVERT_H
#define G8_CONVERT_H

#include "common.h"

/* llama.cpp's general.file_type for files mostly of a matrix type */
uint32_t g8_file_type(uint32_t type);
/* The type of token_embd / output for params (output_type, or its default). */
uint32_t g8_output_type(const gemma8_convert_params *p);
/* Refuses types that cannot be written. */
gemma8_status g8_check_convert_types(const gemma8_convert_params *p);

#endif
