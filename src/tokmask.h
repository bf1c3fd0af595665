/* tokmask.h - the tokens a grammar allows next, found by walking a trie of the
 * vocabulary's token texts with the grammar's state: a subtree is left as soon
 * as no stack can take its bytes, and a subtree whose tokens all stay inside a
 * repeated character class (the body of a JSON string, say) is taken whole
 * from a per-class summary without being walked. */
#ifndef G8_TOKMASK_H
#define G8_TOKMASK_H

#include "grammar.h"

#define G8_MAX_TOKEN_TEXT 256  /* bytes; a longer token is never allowed */

/* The vocabulary's trie, in preorder: node i's children are i + 1, then
 * skip[child] after each; its subtree ends at skip[i]. The tokens of a subtree
 * are order[tok[i] .. tok[skip[i]]), those ending at node i first (own[i]). */
typedef struct g8_vindex {
    int32_t n_vocab;
    uint32_t n_nodes, n_tokens, max_len;
    uint8_t *byte;         /* the byte leading to the node */
    uint32_t *skip;
    uint32_t *tok;         /* (n_nodes + 1) */
    uint16_t *own;
    int32_t *order;        /* token ids */
    uint32_t *text_off;    /* (n_vocab + 1) each token's text in text; empty if never allowed */
    uint8_t *text;
    int32_t eog[4];
    int n_eog;
    struct g8_vsummary *sum;
    int n_sum, cap_sum;
} g8_vindex;

/* The model's index, built on first use (thread-safe); NULL with the error set. */
const g8_vindex *g8_vindex_get(const gemma8_model *m);
void g8_vindex_free(g8_vindex *vx);

#endif
