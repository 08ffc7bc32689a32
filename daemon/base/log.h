/*
 * log.h - dbtd's own log, on stderr (systemd style: one line per event,
 * "<N>" priority prefixes when stderr goes to the journal).
 */
#ifndef DBTD_LOG_H
#define DBTD_LOG_H

#define LOG_LVL_ERR 3
#define LOG_LVL_WARNING 4
#define LOG_LVL_INFO 6
#define LOG_LVL_DEBUG 7

/* log_init - decide the line format once (journal or plain stderr). */
void log_init(int verbose);

/* log_msg - write one line at level `lvl`. */
void log_msg(int lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_err(...) log_msg(LOG_LVL_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARNING, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

#endif /* DBTD_LOG_H */
