/*
 * textproto_lex.h - the tokenizer of the text-format parser (internal to
 * consumer/textproto*.c): identifiers, numbers, quoted strings and
 * punctuation, with the line and column where each token starts.
 */
#ifndef TB_CONSUMER_TEXTPROTO_LEX_H
#define TB_CONSUMER_TEXTPROTO_LEX_H

#include <stdbool.h>
#include <stddef.h>

enum tb_tp_tok_kind {
    TB_TP_EOF,
    TB_TP_IDENT,
    TB_TP_NUMBER, /* raw text, may start with '-' ("-12", "0x1f", "-inf") */
    TB_TP_STRING, /* raw text including the quotes */
    TB_TP_PUNCT,  /* one of : { } < > [ ] , ; */
    TB_TP_BAD,    /* a character no token starts with, or an unterminated string */
};

struct tb_tp_tok {
    enum tb_tp_tok_kind kind;
    char punct;
    int line;
    int col;
    const char *start; /* points into the parsed text, not NUL-terminated */
    size_t len;
};

struct tb_tp_lexer {
    const char *p;
    const char *end;
    int line;
    int col;
};

/* tb_tp_lex_init() - start lexing [@text, @text + @len). */
void tb_tp_lex_init(struct tb_tp_lexer *lx, const char *text, size_t len);

/*
 * tb_tp_lex_next() - the next token, skipping blanks and '#' comments.
 * A bad character or unterminated string comes back as TB_TP_BAD.
 */
void tb_tp_lex_next(struct tb_tp_lexer *lx, struct tb_tp_tok *tok);

/*
 * tb_tp_describe() - the token as an error message shows it: "end of
 * input", or the text in quotes, shortened. Return: @buf.
 */
const char *tb_tp_describe(const struct tb_tp_tok *tok, char *buf, size_t len);

/*
 * tb_tp_unquote() - decode a TB_TP_STRING token's escapes and append the
 * bytes to *@buf (malloc'd, grown as needed, NUL-terminated, *@len bytes
 * without the NUL). On failure *@bad_col receives the column of the bad
 * escape. Return: 0, -EINVAL (bad escape), -ENOMEM.
 */
int tb_tp_unquote(const struct tb_tp_tok *tok, char **buf, size_t *len, size_t *cap, int *bad_col);

#endif /* TB_CONSUMER_TEXTPROTO_LEX_H */
