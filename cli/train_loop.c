/* train_loop.c - the training loop of 'series train' and 'mol train' (cli/train_loop.h). */
#include "train_loop.h"
#include "mpi.h"
#include "progress.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int cli_train_option(int o, const char *arg, cli_train_args *t) {
    if (o >= CLI_TRAIN_OPT && o <= CLI_TRAIN_OPT + 9) t->given |= 1u << (o - CLI_TRAIN_OPT);
    switch (o - CLI_TRAIN_OPT) {
    case 0: return cli_int("--steps", arg, 1, 100000000, &t->steps) ? 2 : 0;
    case 1: return cli_float("--minutes", arg, 0, 1e7, &t->minutes) ? 2 : 0; /* 0: no limit */
    case 2: return cli_int("--batch", arg, 1, 4096, &t->batch) ? 2 : 0;
    case 3: return cli_float("--lr", arg, 1e-8, 0.999, &t->lr) ? 2 : 0;
    case 4: return cli_int("--seed", arg, 0, 1L << 62, &t->seed) ? 2 : 0;
    case 5: return cli_int("--save-every", arg, 1, 100000000, &t->save_every) ? 2 : 0;
    case 6: return cli_int("--log-every", arg, 1, 100000000, &t->log_every) ? 2 : 0;
    case 7: t->resume = 1; return 0;
    case 8: return cli_int("--threads", arg, 1, 1024, &t->threads) ? 2 : 0;
    case 9: return cli_float("--ema", arg, 0, 0.999999, &t->ema) ? 2 : 0; /* 0: no EMA */
    default: return -1;
    }
}

int cli_train_record(cJSON *rec, const cli_train_args *t) {
    const struct {
        const char *key;
        double v;
    } f[] = {{"batch", (double)t->batch}, {"lr", t->lr}, {"ema", (double)(float)t->ema}, {"steps", (double)t->steps}, {"minutes", t->minutes},
             {"save_every", (double)t->save_every}, {"log_every", (double)t->log_every}};
    for (size_t k = 0; k < sizeof f / sizeof *f; k++)
        if (!cJSON_AddNumberToObject(rec, f[k].key, f[k].v)) return -1;
    return 0;
}

int cli_record_number(const cJSON *rec, const char *key, double lo, double hi, int whole, double *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec, key);
    if (!v) return 0;
    const double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!(d >= (double)(float)lo && d <= (double)(float)hi) || (whole && d != floor(d)))
        return cli_fail("the checkpoint's training setting \"%s\" is not a%s number in [%g, %g]", key,
                        whole ? " whole" : "", lo, hi);
    *out = d;
    return 0;
}

int cli_train_lr_note(double recorded, double given) {
    if ((float)recorded == (float)given) return 0;
    if (cli_mpi_rank() == 0)
        fprintf(stderr, "diffuse: note: the run trained at --lr %g; it continues at %g\n", recorded, given);
    return 1;
}

int cli_train_restore(const char *cmd, const char *json, cli_train_args *t, cJSON **rec_out) {
    if (rec_out) *rec_out = NULL;
    /* the record is optional (docs/CHECKPOINTS.md): without one the options stand */
    cJSON *rec = json ? cJSON_Parse(json) : cJSON_CreateObject();
    if (!cJSON_IsObject(rec)) {
        cJSON_Delete(rec);
        return cli_fail("%s: the checkpoint's training record is not a JSON object", cmd);
    }
    const struct {
        const char *key, *opt;
        int bit, whole;
        double lo, hi;
        long *l;
        double *d;
    } f[] = {{"batch", "--batch", 2, 1, 1, 4096, &t->batch, NULL},
             {"lr", "--lr", 3, 0, 1e-8, 0.999, NULL, &t->lr},
             {"ema", "--ema", 9, 0, 0, 0.999999, NULL, &t->ema},
             {"steps", "--steps", 0, 1, 1, 100000000, &t->steps, NULL},
             {"minutes", "--minutes", 1, 0, 0, 1e7, NULL, &t->minutes},
             {"save_every", "--save-every", 5, 1, 1, 100000000, &t->save_every, NULL},
             {"log_every", "--log-every", 6, 1, 1, 100000000, &t->log_every, NULL}};
    const int lead = cli_mpi_rank() == 0;
    for (size_t k = 0; k < sizeof f / sizeof *f; k++) {
        if (!cJSON_GetObjectItemCaseSensitive(rec, f[k].key)) continue;
        double d = 0;
        if (cli_record_number(rec, f[k].key, f[k].lo, f[k].hi, f[k].whole, &d)) {
            cJSON_Delete(rec);
            return 2;
        }
        const int given = (t->given >> f[k].bit) & 1;
        const double now = f[k].l ? (double)*f[k].l : *f[k].d;
        if (given && f[k].bit == 2 && now != d && lead) /* the batch is the run's own */
            fprintf(stderr, "diffuse: note: --batch ignored; the resumed run keeps its %g\n", d);
        else if (given && f[k].bit == 3)
            cli_train_lr_note(d, now);
        else if (given && f[k].bit == 9 && (float)d != (float)now && lead)
            fprintf(stderr, "diffuse: note: the run kept an EMA of decay %g; it continues with %g\n", d, now);
        if (given && f[k].bit != 2) continue;
        if (f[k].l) *f[k].l = (long)d;
        else *f[k].d = d;
    }
    if (rec_out) *rec_out = rec;
    else cJSON_Delete(rec);
    return 0;
}

void cli_train_restore_text(const char *cmd, const cJSON *rec, const char *key, const char *opt, const char **v) {
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(rec, key);
    if (!cJSON_IsString(r)) return;
    if (!*v) *v = r->valuestring;
    else if (strcmp(*v, r->valuestring) != 0 && cli_mpi_rank() == 0)
        fprintf(stderr, "diffuse: note: %s: the run trained with %s %s; it continues with %s\n", cmd, opt,
                r->valuestring, *v);
}

int cli_train_out_ok(const char *cmd, const char *out) {
    char parent[4200];
    snprintf(parent, sizeof parent, "%s", out);
    char *slash = strrchr(parent, '/');
    if (slash == parent) slash[1] = 0;
    else if (slash) *slash = 0;
    else snprintf(parent, sizeof parent, ".");
    if (cli_mpi_rank() == 0 && access(parent, W_OK) != 0)
        return cli_fail("%s: cannot create --out %s: %s: %s", cmd, out, parent, strerror(errno));
    return 0;
}

float cli_train_lr(const cli_train_loop *L, long step, double minutes) {
    double done = (double)step / L->steps;
    if (L->minutes > 0 && minutes / L->minutes > done) done = minutes / L->minutes;
    double f = done >= 0.9 ? 0.01 : done >= 0.75 ? 0.1 : 1.0;
    return (float)(L->lr * f);
}

int cli_train_loop_run(const cli_train_loop *L, dfs_train_state *st) {
    const int lead = cli_mpi_rank() == 0;
    int rc = 0, stop = 0;
    cli_catch_signals();
    if (lead && L->resumed) {
        fprintf(stderr, "%s: resuming with batch %ld, lr %g, ema %g, steps %ld, ", L->cmd, L->batch, L->lr, L->ema,
                L->steps);
        if (L->minutes > 0) fprintf(stderr, "minutes %g", L->minutes);
        else fprintf(stderr, "no time limit");
        fprintf(stderr, ", save every %ld, log every %ld (the run's own unless given)\n", L->save_every, L->log_every);
    }
    cli_progress bar;
    cli_progress_start(&bar, "step", L->steps, st->step, lead ? 100 : 0);
    const double t0 = cli_now(), wall0 = st->wall_seconds;
    const long step0 = st->step;
    double avg = 0;
    int have = 0;
    dfs_status ds = DFS_OK;
    while (st->step < L->steps) {
        /* every rank stops at the same step and sees the same clock (the largest), which the
         * learning rate's schedule reads */
        stop = cli_interrupted();
        cli_mpi_step_agree(&stop, &st->wall_seconds);
        if (stop) break;
        if (L->minutes > 0 && st->wall_seconds >= L->minutes * 60) break; /* the run's total */
        float loss;
        const float lr = cli_train_lr(L, st->step, st->wall_seconds / 60);
        if ((ds = L->step(L->user, lr, &loss)) != DFS_OK) {
            cli_progress_end(&bar);
            if (ds == DFS_ERR_NAN && !lead) rc = 2; /* the loss is every rank's: rank 0 says it */
            else rc = cli_fail("%s; stopping%s", dfs_last_error(), ds == DFS_ERR_NAN ? " (the last checkpoint is kept: resume with a lower --lr)" : "");
            if (ds != DFS_ERR_NAN) cli_mpi_abort(rc); /* this rank's alone: the others wait in the next sum */
            break;
        }
        avg = have ? 0.98 * avg + 0.02 * loss : loss;
        have = 1;
        const double el = cli_now() - t0, rate = (st->step - step0) * (double)L->batch / (el > 0 ? el : 1e-9);
        st->wall_seconds = wall0 + el;
        if (!lead) continue;
        if (st->step % L->log_every == 0 || st->step == L->steps) {
            const double shown = L->warmup > 0 && st->step < L->warmup ? (double)lr * st->step / L->warmup : lr;
            if (fprintf(L->metrics, "%ld,%.9g,%.6g,%ld,%.2f,%.2f\n", st->step, loss, shown, st->images_seen, rate,
                        st->wall_seconds) < 0 || fflush(L->metrics) != 0) {
                cli_progress_end(&bar);
                rc = cli_fail("cannot write %s: %s; stopping", L->csv, strerror(errno));
                if (cli_mpi_ranks() > 1 && L->save(L->user, L->ckpt, 1) == DFS_OK)
                    fprintf(stderr, "diffuse: the checkpoint of step %ld is saved to %s\n", st->step, L->ckpt);
                cli_mpi_abort(rc);
                break;
            }
        }
        /* the time to the end: of --steps at this session's rate, or of --minutes if sooner */
        double eta = CLI_ETA_AUTO;
        if (L->minutes > 0 && st->step > step0) {
            const double by_steps = (L->steps - st->step) * (el / (st->step - step0));
            const double by_clock = L->minutes * 60 - st->wall_seconds;
            eta = by_clock < by_steps ? (by_clock > 0 ? by_clock : 0) : by_steps;
        }
        cli_progress_update(&bar, st->step, eta, "loss %.4f | %.1f %s/s", avg, rate, L->unit);
        if (st->step % L->save_every == 0 && (ds = L->save(L->user, L->ckpt, 1)) != DFS_OK) {
            cli_progress_end(&bar);
            rc = cli_mpi_abort(cli_fail_status(ds));
            break;
        }
    }
    cli_progress_end(&bar);
    if (lead && ds != DFS_ERR_NAN && st->step > step0) {
        dfs_status s1 = L->save(L->user, L->ckpt, 1);
        dfs_status s2 = s1 == DFS_OK ? L->save(L->user, L->final, 0) : s1;
        if (s2 != DFS_OK && !rc) rc = cli_fail_status(s2);
        if (!rc)
            fprintf(stderr, "%s at step %ld (%.1f s of training): %s (resumable), %s (sampling)\n",
                    stop ? "interrupted" : "done", st->step, st->wall_seconds, L->ckpt, L->final);
        double sum_s, wait_s, run_s = st->wall_seconds - wall0 > 0 ? st->wall_seconds - wall0 : 1e-9;
        long sums;
        cli_mpi_sum_time(&sum_s, &wait_s, &sums);
        if (!rc && sums > 0)
            fprintf(stderr, "%d ranks: the gradient sum took %.2f ms per step, %.1f%% of the step time; rank 0 "
                    "waited %.2f ms per step for the slowest rank\n", cli_mpi_ranks(), 1e3 * sum_s / sums,
                    100 * sum_s / run_s, 1e3 * wait_s / sums);
    }
    return rc;
}
