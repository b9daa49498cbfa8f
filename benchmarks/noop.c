/*
 * noop: the smallest CNI plugin that follows the protocol, for measuring what
 * a runtime adds on top of executing plugins (benchmarks/bench.py compiles it
 * with the system C compiler).
 *
 * Reads all of stdin.  ADD prints the "prevResult" object of its stdin if
 * there is one (so a chain of noops passes the result along unchanged), else
 * {"cniVersion":"<the config's cniVersion>"}.  VERSION prints the versions it
 * supports.  Every other command (CHECK, DEL, GC, STATUS) prints nothing and
 * succeeds.  No allocation beyond the stdin buffer, no other system calls.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *read_all(size_t *len) {
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap + 1);
    if (!buf) exit(5);
    for (;;) {
        ssize_t got = read(0, buf + n, cap - n);
        if (got < 0) exit(5);
        if (got == 0) break;
        n += (size_t)got;
        if (n == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
            if (!buf) exit(5);
        }
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* The value that follows "key": at the top level of the object, or NULL.
 * On success *end is one past the value's last byte. */
static const char *find_value(const char *doc, const char *key, const char **end) {
    size_t klen = strlen(key);
    int depth = 0;
    const char *p = doc;
    while (*p) {
        char c = *p;
        if (c == '"') {
            const char *s = p + 1, *q = s;
            while (*q && *q != '"') q += (*q == '\\' && q[1]) ? 2 : 1;
            if (!*q) return NULL;
            const char *after = q + 1;
            if (depth == 1 && (size_t)(q - s) == klen && memcmp(s, key, klen) == 0) {
                while (*after == ' ' || *after == '\t' || *after == '\n' || *after == '\r') after++;
                if (*after == ':') {
                    const char *v = after + 1;
                    while (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r') v++;
                    /* find the end of the value */
                    int d = 0;
                    const char *e = v;
                    do {
                        if (*e == '"') {
                            e++;
                            while (*e && *e != '"') e += (*e == '\\' && e[1]) ? 2 : 1;
                            if (!*e) return NULL;
                        } else if (*e == '{' || *e == '[') {
                            d++;
                        } else if (*e == '}' || *e == ']') {
                            d--;
                        } else if (d == 0 && (*e == ',')) {
                            break;
                        }
                        e++;
                    } while (*e && d > 0);
                    *end = e;
                    return v;
                }
            }
            p = after;
            continue;
        }
        if (c == '{' || c == '[') depth++;
        if (c == '}' || c == ']') depth--;
        p++;
    }
    return NULL;
}

int main(void) {
    size_t len;
    char *in = read_all(&len);
    const char *cmd = getenv("CNI_COMMAND");
    const char *end;
    if (cmd && strcmp(cmd, "VERSION") == 0) {
        fputs("{\"cniVersion\":\"1.1.0\",\"supportedVersions\":"
              "[\"0.3.0\",\"0.3.1\",\"0.4.0\",\"1.0.0\",\"1.1.0\"]}",
              stdout);
        return 0;
    }
    if (cmd && strcmp(cmd, "ADD") == 0) {
        const char *v = find_value(in, "prevResult", &end);
        if (v && *v == '{') {
            fwrite(v, 1, (size_t)(end - v), stdout);
            return 0;
        }
        v = find_value(in, "cniVersion", &end);
        fputs("{\"cniVersion\":", stdout);
        if (v && *v == '"')
            fwrite(v, 1, (size_t)(end - v), stdout);
        else
            fputs("\"1.0.0\"", stdout);
        fputs("}", stdout);
    }
    return 0;
}
