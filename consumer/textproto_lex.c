/*
 * textproto_lex.c - tokenizer and string-escape decoder for the text-format
 * parser. Tracks line and column so every parse error can point at the
 * byte where it happened.
 */
#include "consumer/textproto_lex.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void tb_tp_lex_init(struct tb_tp_lexer *lx, const char *text, size_t len)
{
    lx->p = text;
    lx->end = text + len;
    lx->line = 1;
    lx->col = 1;
}

static void advance(struct tb_tp_lexer *lx)
{
    if (*lx->p == '\n') {
        lx->line++;
        lx->col = 1;
    } else {
        lx->col++;
    }
    lx->p++;
}

static void skip_blanks(struct tb_tp_lexer *lx)
{
    while (lx->p < lx->end) {
        if (isspace((unsigned char)*lx->p)) {
            advance(lx);
        } else if (*lx->p == '#') {
            while (lx->p < lx->end && *lx->p != '\n')
                advance(lx);
        } else {
            break;
        }
    }
}

static bool is_ident_char(char c)
{
    return isalnum((unsigned char)c) || c == '_';
}

static void lex_number(struct tb_tp_lexer *lx)
{
    const char *start = lx->p;
    bool hex;

    if (*lx->p == '-')
        advance(lx);
    hex = lx->end - lx->p > 1 && lx->p[0] == '0' && (lx->p[1] == 'x' || lx->p[1] == 'X');
    while (lx->p < lx->end) {
        char c = *lx->p;
        char prev = lx->p > start ? lx->p[-1] : 0;

        if (is_ident_char(c) || c == '.')
            advance(lx);
        else if ((c == '+' || c == '-') && !hex && (prev == 'e' || prev == 'E'))
            advance(lx);
        else
            break;
    }
}

/* Moves past a quoted string. Return: false when it never closes on its line. */
static bool lex_string(struct tb_tp_lexer *lx)
{
    char quote = *lx->p;

    advance(lx);
    while (lx->p < lx->end && *lx->p != '\n') {
        if (*lx->p == '\\' && lx->p + 1 < lx->end && lx->p[1] != '\n') {
            advance(lx);
            advance(lx);
            continue;
        }
        if (*lx->p == quote) {
            advance(lx);
            return true;
        }
        advance(lx);
    }
    return false;
}

void tb_tp_lex_next(struct tb_tp_lexer *lx, struct tb_tp_tok *tok)
{
    char c;

    skip_blanks(lx);
    memset(tok, 0, sizeof(*tok));
    tok->line = lx->line;
    tok->col = lx->col;
    tok->start = lx->p;
    if (lx->p >= lx->end) {
        tok->kind = TB_TP_EOF;
        return;
    }
    c = *lx->p;
    if (isalpha((unsigned char)c) || c == '_') {
        tok->kind = TB_TP_IDENT;
        while (lx->p < lx->end && is_ident_char(*lx->p))
            advance(lx);
    } else if (isdigit((unsigned char)c) ||
               ((c == '-' || c == '.') && lx->end - lx->p > 1 &&
                (isalnum((unsigned char)lx->p[1]) || lx->p[1] == '.'))) {
        tok->kind = TB_TP_NUMBER;
        lex_number(lx);
    } else if (c == '"' || c == '\'') {
        tok->kind = lex_string(lx) ? TB_TP_STRING : TB_TP_BAD;
    } else if (strchr(":{}<>[],;", c)) {
        tok->kind = TB_TP_PUNCT;
        tok->punct = c;
        advance(lx);
    } else {
        tok->kind = TB_TP_BAD;
        advance(lx);
    }
    tok->len = (size_t)(lx->p - tok->start);
}

const char *tb_tp_describe(const struct tb_tp_tok *tok, char *buf, size_t len)
{
    if (tok->kind == TB_TP_EOF)
        snprintf(buf, len, "end of input");
    else if (tok->len > 24)
        snprintf(buf, len, "'%.20s...'", tok->start);
    else
        snprintf(buf, len, "'%.*s'", (int)tok->len, tok->start);
    return buf;
}

static int put(char **buf, size_t *len, size_t *cap, const char *src, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t ncap = (*cap ? *cap * 2 : 32);
        char *nb;

        while (ncap < *len + n + 1)
            ncap *= 2;
        nb = realloc(*buf, ncap);
        if (!nb)
            return -ENOMEM;
        *buf = nb;
        *cap = ncap;
    }
    memcpy(*buf + *len, src, n);
    *len += n;
    (*buf)[*len] = '\0';
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Encodes code point @cp as UTF-8 into @out. Return: the byte count. */
static size_t utf8(unsigned long cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    out[0] = (char)(0xE0 | (cp >> 12));
    out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
}

/* Decodes the escape at s[0] == '\\'. Return: bytes consumed, 0 if invalid. */
static size_t decode_escape(const char *s, const char *end, char *out, size_t *out_len)
{
    static const char simple_in[] = "ntr\"'\\abfv?";
    static const char simple_out[] = "\n\t\r\"'\\\a\b\f\v?";
    const char *hit = strchr(simple_in, s[1]);
    unsigned long v = 0;
    size_t i;

    if (s[1] && hit) {
        out[0] = simple_out[hit - simple_in];
        *out_len = 1;
        return 2;
    }
    if (s[1] >= '0' && s[1] <= '7') {
        for (i = 1; i < 4 && s + i < end && s[i] >= '0' && s[i] <= '7'; i++)
            v = v * 8 + (unsigned long)(s[i] - '0');
        if (v > 255)
            return 0;
        out[0] = (char)v;
        *out_len = 1;
        return i;
    }
    if (s[1] == 'x' || s[1] == 'X') {
        for (i = 2; i < 4 && s + i < end && hexval(s[i]) >= 0; i++)
            v = v * 16 + (unsigned long)hexval(s[i]);
        if (i == 2)
            return 0;
        out[0] = (char)v;
        *out_len = 1;
        return i;
    }
    if (s[1] == 'u') {
        for (i = 2; i < 6; i++) {
            if (s + i >= end || hexval(s[i]) < 0)
                return 0;
            v = v * 16 + (unsigned long)hexval(s[i]);
        }
        *out_len = utf8(v, out);
        return 6;
    }
    return 0;
}

int tb_tp_unquote(const struct tb_tp_tok *tok, char **buf, size_t *len, size_t *cap, int *bad_col)
{
    const char *s = tok->start + 1;
    const char *end = tok->start + tok->len - 1; /* the closing quote */
    int err;

    /* An empty string still needs a buffer to point at. */
    err = put(buf, len, cap, "", 0);
    while (!err && s < end) {
        const char *run = s;
        char out[4];
        size_t n, olen;

        while (s < end && *s != '\\')
            s++;
        err = put(buf, len, cap, run, (size_t)(s - run));
        if (err || s >= end)
            break;
        n = decode_escape(s, end, out, &olen);
        if (!n) {
            *bad_col = tok->col + (int)(s - tok->start);
            return -EINVAL;
        }
        err = put(buf, len, cap, out, olen);
        s += n;
    }
    return err;
}
