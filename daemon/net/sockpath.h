/*
 * sockpath.h - the checks dbtd makes before it binds its Unix socket, after
 * tmux's rules for its socket directory.
 *
 * The socket's directory is created when missing (missing parents too),
 * mode 0700, with search permission added for the group and for others
 * when the socket's own mode lets them connect (0660 gives 0710).  An
 * existing directory is used only when it is a real directory (not a
 * symlink), owned by the user dbtd runs as (or by root) and writable by
 * neither its group nor others: whoever can write there could replace the
 * socket that clients trust.  Such a directory may be readable and
 * searchable by anyone (0750 and 0755 are fine).
 *
 * Then the path itself: nothing there is fine; a socket another process
 * answers on is refused (-EADDRINUSE); a socket nobody answers on is stale
 * and removed.  Anything else (a regular file, a directory, a symlink, a
 * fifo) is refused and left alone: only ever a socket is unlinked.
 *
 * On an error the functions return a negative errno and set *why to a
 * malloc'd sentence for the log (what failed, on what, what to do); the
 * caller frees it.  *why may stay NULL when there is no memory for it.
 */
#ifndef DBTD_SOCKPATH_H
#define DBTD_SOCKPATH_H

#include <sys/stat.h>
#include <sys/types.h>

/*
 * sockpath_prepare - make the directory of the socket path (to be bound with
 * file mode sock_mode) ready and safe, and the path free for bind().
 * 0, or -errno with *why set.
 */
int sockpath_prepare(const char *path, mode_t sock_mode, char **why);

/* sockpath_dir_mode - the mode of a socket directory dbtd creates for a socket of sock_mode. */
mode_t sockpath_dir_mode(mode_t sock_mode);

/*
 * sockpath_check_dir - whether st, dir's lstat(), is a directory dbtd may
 * listen in when it runs as euid.  0, or -errno with *why set.
 */
int sockpath_check_dir(const char *dir, const struct stat *st, uid_t euid, char **why);

/* sockpath_kind - what a file of st_mode `mode` is, in words ("a regular file"). */
const char *sockpath_kind(mode_t mode);

#endif /* DBTD_SOCKPATH_H */
