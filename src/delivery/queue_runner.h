/* The outbound queue runner (docs/delivery.md): a thread with its own event
 * loop that leases due queue entries from the store, routes each recipient
 * domain (MX, A, smarthost), delivers with the SMTP client, records the outcome
 * per recipient, bounces with a DSN what failed for good and reschedules the
 * rest by [delivery] retry_schedule until [delivery] expiry. Store work runs on
 * the worker pool, never on the runner's loop. */
#ifndef HERMOD_DELIVERY_QUEUE_RUNNER_H
#define HERMOD_DELIVERY_QUEUE_RUNNER_H

struct config;
struct store;
struct worker_pool;
struct queue_runner;

/* Starts the runner's thread. cfg is read during the call only. 1 ok; -1 with
 * *error_r (malloc'd). */
int queue_runner_start(const struct config *cfg, struct store *st, struct worker_pool *pool,
                       struct queue_runner **r_r, char **error_r);
/* Ends the attempts in flight (their entries stay queued and go at the next
 * start) and joins the thread. The pool may still run the runner's jobs. */
void queue_runner_stop(struct queue_runner *r);
/* After the pool has ended: runs what its jobs left and frees. NULL ok. */
void queue_runner_free(struct queue_runner **r);

#endif
