/*
** body.c — forms, methods and sinks (body.h). Called from libcurl's write
** callback (transfer.c) and its read callbacks of upload parts: no Lua here.
*/
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "syserr.h"
#include "body.h"

int aigc_body_set_path (aigc_body *b, const char *path) {
  size_t n = strlen(path);
  free(b->path);
  free(b->part_path);
  b->path = (char *)malloc(n + 1);
  b->part_path = (char *)malloc(n + 6);
  if (b->path == NULL || b->part_path == NULL) {
    free(b->path);
    free(b->part_path);
    b->path = b->part_path = NULL;
    return -1;
  }
  memcpy(b->path, path, n + 1);
  memcpy(b->part_path, path, n);
  memcpy(b->part_path + n, ".part", 6);
  b->sink = AIGC_SINK_FILE;
  return 0;
}

/*
** Whether the name part_path still leads to the file open as b->fp (mine:
** its fstat). Another download to the same path (another request, another
** client, another thread's lua_State) unlinks it and makes its own part
** file under the name: ours is then no longer there to rename or remove.
*/
static int part_is_mine (const aigc_body *b, const struct stat *mine) {
  struct stat now;
  return stat(b->part_path, &now) == 0 && now.st_dev == mine->st_dev && now.st_ino == mine->st_ino;
}

/* Whether another download replaced our part file: another file stands
   under part_path, or none does but path is there (the other one ended
   first and renamed its own into place). Neither there: the folder was
   removed, say, which the rename then reports (ENOENT). */
static int part_is_another (const aigc_body *b, const struct stat *mine) {
  struct stat now;
  if (stat(b->part_path, &now) == 0)
    return !(now.st_dev == mine->st_dev && now.st_ino == mine->st_ino);
  return stat(b->path, &now) == 0;
}

static void drop_part (aigc_body *b) {
  if (b->fp != NULL) {
    struct stat mine;
    int known = fstat(fileno(b->fp), &mine) == 0;
    fclose(b->fp);
    b->fp = NULL;
    if (b->part_path != NULL && known && part_is_mine(b, &mine))
      unlink(b->part_path);
  }
}

/*
** {======================================================
** Parts read from a path
** =======================================================
*/

/* What a file that is not a regular one is, for the message. */
static const char *kind_of (mode_t m) {
  if (S_ISDIR(m)) return "a directory";
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISSOCK(m)) return "a socket";
  return "not a regular file";
}

int aigc_body_check_file (const char *path, const char **kind) {
  struct stat st;
  if (stat(path, &st) != 0)
    return -1;
  if (!S_ISREG(st.st_mode)) {
    *kind = kind_of(st.st_mode);
    errno = EINVAL;
    return -1;
  }
  return access(path, R_OK);   /* (as libcurl checked: EACCES at the call) */
}

/* The attempt cannot send f: says why (the loop makes it the error). */
static void upload_failed (aigc_upfile *f, aigc_upload_why why, int e, curl_off_t now) {
  aigc_body *b = f->body;
  if (b->upload_bad != NULL)   /* the first cause stands */
    return;
  b->upload_bad = f;
  b->upload_why = why;
  b->upload_errno = e;
  b->upload_now = now;
  b->upload_kind = NULL;
}

static void close_file (aigc_upfile *f) {
  if (f->fd >= 0) {
    close(f->fd);
    f->fd = -1;
  }
}

/* Whether f's size is still the one its attempt began with (told when not). */
static int same_size (aigc_upfile *f) {
  struct stat st;
  if (f->unsized)   /* (stat says nothing of it) */
    return 1;
  if (fstat(f->fd, &st) != 0) {
    upload_failed(f, AIGC_UPLOAD_ERRNO, errno ? errno : EIO, 0);
    return 0;
  }
  if ((curl_off_t)st.st_size != f->size) {
    upload_failed(f, AIGC_UPLOAD_CHANGED, 0, (curl_off_t)st.st_size);
    return 0;
  }
  return 1;
}

/* An unsized file's read: to its end, failed past AIGC_UNSIZED_MAX. */
static size_t unsized_read (aigc_upfile *f, char *buf, size_t want) {
  ssize_t got;
  do
    got = read(f->fd, buf, want);
  while (got < 0 && errno == EINTR);
  if (got < 0) {
    upload_failed(f, AIGC_UPLOAD_ERRNO, errno ? errno : EIO, 0);
    return CURL_READFUNC_ABORT;
  }
  f->pos += got;
  if (f->pos > AIGC_UNSIZED_MAX) {
    upload_failed(f, AIGC_UPLOAD_TOO_BIG, 0, f->pos);
    return CURL_READFUNC_ABORT;
  }
  return (size_t)got;
}

/*
** libcurl's read callback of a path part: at most the size the attempt
** began with. The file ending before it, or being longer once it is all
** read, aborts the transfer: libcurl would send a body shorter than its
** Content-Length (the server waits for the rest) or a corrupt one.
*/
static size_t file_read (char *buf, size_t size, size_t nitems, void *arg) {
  aigc_upfile *f = (aigc_upfile *)arg;
  size_t want = size * nitems;
  ssize_t got;
  if (f->fd < 0)
    return CURL_READFUNC_ABORT;
  if (f->unsized)
    return unsized_read(f, buf, want);
  if (f->pos >= f->size)
    return same_size(f) ? 0 : CURL_READFUNC_ABORT;
  if ((curl_off_t)want > f->size - f->pos)
    want = (size_t)(f->size - f->pos);
  do
    got = read(f->fd, buf, want);
  while (got < 0 && errno == EINTR);
  if (got < 0) {
    upload_failed(f, AIGC_UPLOAD_ERRNO, errno ? errno : EIO, 0);
    return CURL_READFUNC_ABORT;
  }
  if (got == 0) {   /* shorter than when the attempt began */
    same_size(f);
    upload_failed(f, AIGC_UPLOAD_CHANGED, 0, f->pos);
    return CURL_READFUNC_ABORT;
  }
  f->pos += got;
  if (f->pos == f->size && !same_size(f))
    return CURL_READFUNC_ABORT;
  return (size_t)got;
}

/* libcurl rewinds a part (a redirect, a connection it retries itself). */
static int file_seek (void *arg, curl_off_t offset, int origin) {
  aigc_upfile *f = (aigc_upfile *)arg;
  if (f->fd < 0 || origin != SEEK_SET || offset < 0 || (!f->unsized && offset > f->size))
    return CURL_SEEKFUNC_CANTSEEK;
  if (lseek(f->fd, (off_t)offset, SEEK_SET) < 0)
    return CURL_SEEKFUNC_FAIL;
  f->pos = offset;
  return CURL_SEEKFUNC_OK;
}

/*
** Whether a file that stat says is empty has bytes (1, rewound; 0; -1 with
** errno): a /proc or /sys file's size is known only by reading it. Such a
** file is sent as Python's requests sends it (curl 7.88's -F sends it
** empty): what it reads, to its end.
*/
static int has_bytes (int fd) {
  char c[512];   /* (not 1: some such files refuse reads of odd sizes) */
  ssize_t got;
  do
    got = read(fd, c, sizeof c);
  while (got < 0 && errno == EINTR);
  if (got <= 0)
    return (int)got;
  return lseek(fd, 0, SEEK_SET) < 0 ? -1 : 1;
}

/*
** Opens f for an attempt and gives its part the file's size now. O_NONBLOCK:
** the path may have become a FIFO since the call (an open for reading
** would wait for a writer, in the loop).
*/
static int open_file (aigc_upfile *f) {
  struct stat st;
  close_file(f);
  f->size = f->pos = 0;
  f->unsized = 0;
  f->fd = open(f->path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (f->fd < 0 || fstat(f->fd, &st) != 0) {
    upload_failed(f, AIGC_UPLOAD_ERRNO, errno ? errno : EIO, 0);
    close_file(f);
    return -1;
  }
  if (!S_ISREG(st.st_mode)) {
    upload_failed(f, AIGC_UPLOAD_NOT_FILE, 0, 0);
    f->body->upload_kind = kind_of(st.st_mode);
    close_file(f);
    return -1;
  }
  f->size = (curl_off_t)st.st_size;
  f->unsized = f->size == 0 ? has_bytes(f->fd) : 0;
  if (f->unsized < 0) {
    upload_failed(f, AIGC_UPLOAD_ERRNO, errno ? errno : EIO, 0);
    close_file(f);
    return -1;
  }
  if (curl_mime_data_cb(f->part, f->unsized ? -1 : f->size, file_read, file_seek, NULL, f) != CURLE_OK) {
    upload_failed(f, AIGC_UPLOAD_ERRNO, ENOMEM, 0);
    close_file(f);
    return -1;
  }
  return 0;
}

aigc_upfile *aigc_body_add_file (aigc_body *b, curl_mimepart *part, const char *path,
                                 const char *field) {
  size_t np = strlen(path) + 1, nf = strlen(field) + 1;
  aigc_upfile *f = (aigc_upfile *)malloc(sizeof *f + np + nf), **at = &b->files;
  char *s;
  if (f == NULL)
    return NULL;
  memset(f, 0, sizeof *f);
  s = (char *)(f + 1);
  memcpy(s, path, np);
  memcpy(s + np, field, nf);
  f->path = s;
  f->field = s + np;
  f->body = b;
  f->part = part;
  f->fd = -1;
  while (*at != NULL)   /* in the form's order: the first failure is told */
    at = &(*at)->next;
  *at = f;
  b->uploads_from_path = 1;
  return f;
}

void aigc_body_upload_error (const aigc_body *b, char *msg, size_t n) {
  const aigc_upfile *f = b->upload_bad;
  if (f == NULL)
    snprintf(msg, n, "the upload could not be read");
  else if (b->upload_why == AIGC_UPLOAD_CHANGED)
    snprintf(msg, n, "%s: %s changed size while it was sent (%lld bytes when the request "
             "began, %lld then)", f->field, f->path, (long long)f->size,
             (long long)b->upload_now);
  else if (b->upload_why == AIGC_UPLOAD_TOO_BIG)
    snprintf(msg, n, "%s: %s has no size the system tells (stat says 0 bytes) and gave more "
             "than %lld bytes, the most such a file is read for an upload", f->field, f->path,
             (long long)AIGC_UNSIZED_MAX);
  else if (b->upload_why == AIGC_UPLOAD_NOT_FILE)
    snprintf(msg, n, "%s: %s is %s when the request is sent (only a regular file can be "
             "uploaded)", f->field, f->path, b->upload_kind ? b->upload_kind : "not a regular file");
  else
  {
    char eb[AIGC_ERRBUF];
    snprintf(msg, n, "%s: %s: %s (when the request is sent)", f->field, f->path,
             aigc_strerror(b->upload_errno, eb, sizeof eb));
  }
}

/* }====================================================== */

int aigc_body_attempt (aigc_body *b) {
  aigc_upfile *f;
  drop_part(b);
  b->written = 0;
  b->sink_errno = 0;
  b->sink_replaced = 0;
  b->sink_kind = NULL;
  b->sink_diverted = 0;
  b->events_raw = 0;
  b->upload_bad = NULL;
  for (f = b->files; f != NULL; f = f->next)
    if (open_file(f) != 0) {
      for (f = b->files; f != NULL; f = f->next)
        close_file(f);
      return -1;
    }
  return 0;
}

/*
** A new part file, never one open elsewhere: a part file under the name
** (another download's to the same path, or one a killed process left) is
** unlinked first, not truncated: the other download keeps writing its own
** file, and finds at its end that it was replaced (aigc_body_commit).
*/
static int open_part (aigc_body *b) {
  int fd;
  struct stat there;
  /* The file is renamed to path at the end: a FIFO, a device (/dev/null,
     as root) or a folder there would be replaced, or fail only then. */
  if (stat(b->path, &there) == 0 && !S_ISREG(there.st_mode)) {
    b->sink_kind = kind_of(there.st_mode);
    b->sink_errno = EEXIST;
    return -1;
  }
  if (unlink(b->part_path) != 0 && errno != ENOENT) {
    b->sink_errno = errno;
    return -1;
  }
  fd = open(b->part_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
            b->part_mode != 0 ? (mode_t)b->part_mode : 0666);
  /* (a private file: its mode set before a byte is in it) */
  b->fp = fd >= 0 && (b->part_mode == 0 || fchmod(fd, (mode_t)b->part_mode) == 0) ? fdopen(fd, "wb") : NULL;
  if (b->fp == NULL) {
    b->sink_errno = errno ? errno : EIO;
    if (fd >= 0) {
      close(fd);
      unlink(b->part_path);
    }
    return -1;
  }
  return 0;
}

int aigc_body_write_file (aigc_body *b, const char *p, size_t n) {
  if (b->fp == NULL && open_part(b) != 0)
    return -1;
  if (n > 0 && fwrite(p, 1, n, b->fp) != n) {
    b->sink_errno = errno ? errno : EIO;
    return -1;
  }
  b->written += n;
  return 0;
}

/*
** The whole part file put at path, never over a file there (no_replace):
** link(2) fails EEXIST whenever a file is there, whoever made it and when
** (a check, then a rename, replaced a file another process made in
** between); the part name then unlinked. A filesystem without hard links
** (link fails otherwise, nothing at path): a rename, not atomic there.
*/
static int commit_no_replace (aigc_body *b) {
  struct stat there;
  int e;
  if (link(b->part_path, b->path) == 0) {
    unlink(b->part_path);
    return 0;
  }
  e = errno;
  if (e != EEXIST && lstat(b->path, &there) != 0 && errno == ENOENT) {
    if (rename(b->part_path, b->path) == 0)
      return 0;
    e = errno;
  }
  b->sink_errno = e ? e : EIO;
  unlink(b->part_path);
  return -1;
}

int aigc_body_commit (aigc_body *b) {
  struct stat mine;
  if (b->sink_errno != 0)
    return -1;
  if (b->fp == NULL && open_part(b) != 0)   /* an empty reply: an empty file */
    return -1;
  if (fstat(fileno(b->fp), &mine) != 0) {
    b->sink_errno = errno ? errno : EIO;
    drop_part(b);
    return -1;
  }
  if (fclose(b->fp) != 0) {
    b->fp = NULL;
    b->sink_errno = errno ? errno : EIO;
    if (part_is_mine(b, &mine))
      unlink(b->part_path);
    return -1;
  }
  b->fp = NULL;
  if (part_is_another(b, &mine)) {   /* replaced: the newer download's file stays */
    b->sink_errno = EEXIST;
    b->sink_replaced = 1;
    return -1;
  }
  if (b->no_replace)
    return commit_no_replace(b);
  if (rename(b->part_path, b->path) != 0) {
    b->sink_errno = errno ? errno : EIO;
    unlink(b->part_path);
    return -1;
  }
  return 0;
}

const char *aigc_body_sink_error (const aigc_body *b, char *buf, size_t n) {
  if (b->sink_replaced)
    return "another download to the same path began before this one ended (the later one is kept)";
  if (b->sink_kind != NULL) {   /* (kind_of's static strings) */
    if (strcmp(b->sink_kind, "a directory") == 0)
      return "it is a directory";
    if (strcmp(b->sink_kind, "a FIFO") == 0)
      return "it is a FIFO, not a regular file (a function as `to` gets the bytes as they come)";
    return "it is a device or other special file, not a regular file (a function as `to` gets the bytes)";
  }
  if (b->no_replace && b->sink_errno == EEXIST)
    return "a file is there already (overwrite = false)";
  return aigc_strerror(b->sink_errno, buf, n);
}

/* Whether a Content-Type (NULL: none) holds `word` (lower case) in any
   case: a media type is case-insensitive (RFC 9110 8.3.1), and a server's
   "Text/Event-Stream" was read as no event stream. */
int aigc_body_type_has (const char *ct, const char *word) {
  size_t i, k, wn = strlen(word);
  if (ct == NULL)
    return 0;
  for (i = 0; ct[i] != '\0'; i++) {
    for (k = 0; k < wn; k++) {
      char c = ct[i + k];
      if ((c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c) != word[k])
        break;   /* (the NUL at the end breaks too) */
    }
    if (k == wn)
      return 1;
  }
  return 0;
}

/* As the Lua layer's reply.is_not_audio_type: the media type (before any
   ';' or space, any case) is application/json, ends in +json, or is text/. */
int aigc_body_not_audio_type (const char *ct) {
  char t[128];
  size_t n = 0;
  if (ct == NULL)
    return 0;
  while (*ct == ' ' || *ct == '\t')
    ct++;
  while (ct[n] != '\0' && ct[n] != ';' && ct[n] != ' ' && ct[n] != '\t' && n < sizeof t - 1) {
    t[n] = (char)(ct[n] >= 'A' && ct[n] <= 'Z' ? ct[n] + ('a' - 'A') : ct[n]);
    n++;
  }
  t[n] = '\0';
  return strcmp(t, "application/json") == 0 || (n >= 5 && strcmp(t + n - 5, "+json") == 0)
         || strncmp(t, "text/", 5) == 0;
}

int aigc_body_is_audio_type (const char *ct) {
  if (ct == NULL)
    return 0;
  while (*ct == ' ' || *ct == '\t')
    ct++;
  return strncasecmp(ct, "audio/", 6) == 0;
}

/*
** libcurl's read callback of the fed part. With a size, libcurl stops asking
** once it has that many bytes: a function with more to give would be cut
** short unseen (a corrupt file, and the call told it succeeded). So the
** last byte of the size is held back until the function said it ended; a
** function that gives more then fails the call, before the server has the
** whole body (request.c).
*/
size_t aigc_body_feed_read (char *buf, size_t size, size_t nitems, void *arg) {
  aigc_body *b = (aigc_body *)arg;
  size_t want = size * nitems, have = b->feed.len - b->feed_read;
  if (have > 0 && !b->feed_eof && b->feed_size >= 0 && b->feed_total >= (size_t)b->feed_size)
    have--;   /* (feed_total > feed_size failed the call: aigc_body_feed_mismatch) */
  if (have == 0) {
    if (b->feed_eof)
      return 0;
    b->feed_wanted = 1;   /* the loop calls the function, then unpauses */
    if (b->wake != NULL)
      b->wake(b->wake_arg);
    return CURL_READFUNC_PAUSE;
  }
  if (want > have)
    want = have;
  memcpy(buf, b->feed.data + b->feed_read, want);
  b->feed_read += want;
  b->fed += want;
  if (b->feed_read == b->feed.len) {
    aigc_buf_clear(&b->feed);
    b->feed_read = 0;
  }
  return want;
}

int aigc_body_feed_seek (void *arg, curl_off_t offset, int origin) {
  const aigc_body *b = (const aigc_body *)arg;
  /* Only "from the start" before anything was read: what was given is gone. */
  return (offset == 0 && origin == SEEK_SET && b->fed == 0) ? CURL_SEEKFUNC_OK : CURL_SEEKFUNC_CANTSEEK;
}

int aigc_body_feed (aigc_body *b, const char *p, size_t len, int eof) {
  if (eof)
    b->feed_eof = 1;
  if (len == 0)
    return 0;
  if (aigc_buf_append(&b->feed, p, len) != 0)
    return -1;
  b->feed_total += len;
  return 0;
}

int aigc_body_feed_mismatch (const aigc_body *b, char *msg, size_t n) {
  const char *what;
  if (b->feed_size < 0)
    return 0;
  if (b->feed_total > (size_t)b->feed_size)
    what = "gave more bytes than its size";
  else if (b->feed_eof && b->feed_total < (size_t)b->feed_size)
    what = "ended before its size";
  else
    return 0;
  snprintf(msg, n, "%s (size %lld, it gave %llu)", what, (long long)b->feed_size,
           (unsigned long long)b->feed_total);
  return 1;
}

void aigc_body_free (aigc_body *b) {
  drop_part(b);
  aigc_buf_free(&b->feed);
  curl_mime_free(b->mime);   /* (before its files: it may call nothing of them after) */
  b->mime = NULL;
  while (b->files != NULL) {
    aigc_upfile *f = b->files;
    b->files = f->next;
    close_file(f);
    free(f);
  }
  b->upload_bad = NULL;
  free(b->path);
  free(b->part_path);
  b->path = b->part_path = NULL;
}
