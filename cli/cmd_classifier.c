/* cmd_classifier.c - diffuse classifier train|eval: the small CNN whose features give the
 * Frechet distance of samples and whose predictions give their class accuracy
 * (docs/CLASSIFIER.md). */
#include "common.h"
#include "progress.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static const char *classifier_help =
    "usage: diffuse classifier train --data SRC --out FILE [options]\n"
    "       diffuse classifier eval --model FILE [options]\n"
    "\n"
    "The image classifier that diffuse eval uses: its 128 penultimate features are the space of\n"
    "the Frechet distance, its predictions the class accuracy of samples (docs/CLASSIFIER.md).\n"
    "Run 'diffuse classifier train --help' or 'diffuse classifier eval --help' for options.\n";

static const char *train_help =
    "usage: diffuse classifier train --data SRC --out FILE [options]\n"
    "\n"
    "Train the classifier (five 3x3 convolutions with GroupNorm and SiLU, three of stride 2, a\n"
    "128-wide feature layer on the flattened last map, a linear head) with cross-entropy and\n"
    "AdamW (linear warm-up, then cosine decay to 0). After every epoch prints the mean training\n"
    "loss and the accuracy on --test-data. Writes FILE (safetensors) at the end, with the final\n"
    "test accuracy and the training settings in its metadata. Ctrl-C or SIGTERM stops after the\n"
    "current step, then evaluates and saves what was trained.\n"
    "\n"
    "  --data SRC          labelled training images: fashion-mnist (60000 images),\n"
    "                      fashion-mnist-test, an IDX image file (with --labels) or a folder of\n"
    "                      PNGs in one sub-folder per class (read at 28x28, grey)\n"
    "  --labels FILE       IDX label file for an IDX --data\n"
    "  --test-data SRC     images to measure accuracy on (default fashion-mnist-test; 'none'\n"
    "                      skips the measurement)\n"
    "  --test-labels FILE  IDX label file for an IDX --test-data\n"
    "  --out FILE          the classifier file to write (its folder must exist)\n"
    "  --epochs N          passes over the data (default 3)\n"
    "  --batch N           images per step (default 128)\n"
    "  --lr LR             peak learning rate (default 3e-3)\n"
    "  --weight-decay W    AdamW decoupled weight decay (default 5e-4)\n"
    "  --warmup N          linear warm-up steps (default 100)\n"
    "  --limit N           train on the first N images only\n"
    "  --seed S            seed of the initial weights and of the data order (default 0)\n"
    "  --threads N         threads (default 2)\n";

static const char *eval_help =
    "usage: diffuse classifier eval --model FILE [options]\n"
    "\n"
    "Print the accuracy of a classifier on labelled images, overall and per class.\n"
    "\n"
    "  --model FILE        a classifier written by diffuse classifier train\n"
    "  --data SRC          labelled images (default fashion-mnist-test): fashion-mnist,\n"
    "                      fashion-mnist-test, an IDX image file (with --labels) or a PNG folder\n"
    "  --labels FILE       IDX label file for an IDX --data\n"
    "  --limit N           only the first N images\n"
    "  --threads N         threads (default 2)\n";

/* Load a labelled data set for the classifier (28x28 grey for PNG folders). */
static int load_labelled(dfs_dataset *d, const char *what, const char *spec, const char *labels,
                         long limit) {
    memset(d, 0, sizeof *d);
    dfs_status s = cli_load_data(d, spec, labels, 28, 1, (int)limit);
    if (s != DFS_OK) return cli_fail_status(s);
    if (!d->labels) {
        dfs_dataset_free(d);
        return cli_fail("%s %s has no labels (an IDX file needs --labels FILE, a PNG folder one "
                        "sub-folder per class)",
                        what, spec);
    }
    return 0;
}

/* "0 T-shirt/top 0.861 | 1 Trouser 0.985 | ..." from a K x K confusion matrix. */
static void print_per_class(FILE *f, const int *conf, int K, const dfs_dataset *d) {
    fprintf(f, "per class:");
    for (int k = 0; k < K; k++) {
        long n = 0;
        for (int j = 0; j < K; j++)
            n += conf[k * K + j];
        const char *name = d->class_names && k < d->num_classes ? d->class_names[k] : NULL;
        fprintf(f, "%s %d", k ? " |" : "", k);
        if (name) fprintf(f, " %s", name);
        if (n)
            fprintf(f, " %.3f", (double)conf[k * K + k] / n);
        else
            fprintf(f, " -");
    }
    fputc('\n', f);
}

/* ---- train ---------------------------------------------------------------------------------- */

typedef struct {
    dfs_classifier *c;
    const dfs_dataset *test;
    int epochs, batch;
    long total_steps, done_steps;
    double t0, loss_sum, loss_avg;
    cli_progress bar; /* over the steps of an epoch; a line each tenth when not a terminal */
    char what[64];    /* "epoch E/N step" */
    cJSON *epoch_loss, *epoch_acc;
    int failed;
    char error[512]; /* why evaluation failed inside the callback */
} train_ctx;

static int on_step(void *user, int epoch, long step, long spe, float loss) {
    train_ctx *t = user;
    t->done_steps++;
    if (step == 1) {
        t->loss_sum = 0;
        snprintf(t->what, sizeof t->what, "epoch %d/%d step", epoch + 1, t->epochs);
        if (epoch == 0) cli_progress_start(&t->bar, t->what, spe, 0, 10);
        t->bar.total = spe;
    }
    t->loss_sum += loss;
    t->loss_avg = t->done_steps == 1 ? loss : 0.98 * t->loss_avg + 0.02 * loss;
    double el = cli_now() - t->t0;
    double ips = el > 0 ? (double)t->done_steps * t->batch / el : 0;
    double eta = el * (t->total_steps - t->done_steps) / t->done_steps; /* over all epochs */
    cli_progress_update(&t->bar, step, eta, "loss %.4f | %.0f img/s", t->loss_avg, ips);
    if (step == spe) {
        cli_progress_end(&t->bar);
        double mean = t->loss_sum / spe, acc = -1;
        cJSON_AddItemToArray(t->epoch_loss, cJSON_CreateNumber(mean));
        if (t->test) {
            if (dfs_classifier_evaluate(t->c, t->test, &acc, NULL) != DFS_OK) {
                snprintf(t->error, sizeof t->error, "%s", dfs_last_error());
                t->failed = 1;
                return 1;
            }
            cJSON_AddItemToArray(t->epoch_acc, cJSON_CreateNumber(acc));
            fprintf(stderr,
                    "epoch %d/%d: train loss %.4f, test accuracy %.4f (%d images), %.1f s\n",
                    epoch + 1, t->epochs, mean, acc, t->test->n, cli_now() - t->t0);
        } else {
            fprintf(stderr, "epoch %d/%d: train loss %.4f, %.1f s\n", epoch + 1, t->epochs, mean,
                    cli_now() - t->t0);
        }
    }
    return cli_interrupted();
}

static int classifier_train(int argc, char **argv) {
    const char *data = NULL, *labels = NULL, *out = NULL, *test = "fashion-mnist-test", *test_labels = NULL;
    long limit = 0, threads = 2, epochs, batch, warmup;
    double lr, wd;
    uint64_t seed = 0;
    dfs_classifier_train_config tc;
    dfs_classifier_train_config_default(&tc);
    epochs = tc.epochs, batch = tc.batch, warmup = tc.warmup, lr = tc.lr, wd = tc.weight_decay;
    enum {
        O_DATA = 256,
        O_LABELS,
        O_TEST,
        O_TEST_LABELS,
        O_OUT,
        O_EPOCHS,
        O_BATCH,
        O_LR,
        O_WD,
        O_WARMUP,
        O_LIMIT,
        O_SEED,
        O_THREADS
    };
    static const struct option opts[] = {{"data", required_argument, 0, O_DATA},
                                         {"labels", required_argument, 0, O_LABELS},
                                         {"test-data", required_argument, 0, O_TEST},
                                         {"test-labels", required_argument, 0, O_TEST_LABELS},
                                         {"out", required_argument, 0, O_OUT},
                                         {"epochs", required_argument, 0, O_EPOCHS},
                                         {"batch", required_argument, 0, O_BATCH},
                                         {"lr", required_argument, 0, O_LR},
                                         {"weight-decay", required_argument, 0, O_WD},
                                         {"warmup", required_argument, 0, O_WARMUP},
                                         {"limit", required_argument, 0, O_LIMIT},
                                         {"seed", required_argument, 0, O_SEED},
                                         {"threads", required_argument, 0, O_THREADS},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int o;
    optind = 1;
    opterr = 0;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'h':
            fputs(train_help, stdout);
            return 0;
        case O_DATA:
            data = optarg;
            break;
        case O_LABELS:
            labels = optarg;
            break;
        case O_TEST:
            test = optarg;
            break;
        case O_TEST_LABELS:
            test_labels = optarg;
            break;
        case O_OUT:
            out = optarg;
            break;
        case O_EPOCHS:
            if (cli_int("--epochs", optarg, 1, 10000, &epochs)) return 2;
            break;
        case O_BATCH:
            if (cli_int("--batch", optarg, 1, 4096, &batch)) return 2;
            break;
        case O_LR:
            if (cli_float("--lr", optarg, 1e-9, 0.99, &lr)) return 2;
            break;
        case O_WD:
            if (cli_float("--weight-decay", optarg, 0, 10, &wd)) return 2;
            break;
        case O_WARMUP:
            if (cli_int("--warmup", optarg, 0, 100000000, &warmup)) return 2;
            break;
        case O_LIMIT:
            if (cli_int("--limit", optarg, 1, 100000000, &limit)) return 2;
            break;
        case O_SEED:
            if (cli_u64("--seed", optarg, &seed)) return 2;
            break;
        case O_THREADS:
            if (cli_int("--threads", optarg, 1, 256, &threads)) return 2;
            break;
        default:
            return cli_bad_option("classifier train", argv);
        }
    }
    if (optind < argc) return cli_fail("classifier train: unexpected argument '%s'", argv[optind]);
    if (!data)
        return cli_fail(
            "classifier train: --data is required (fashion-mnist, an IDX file or a PNG folder)");
    if (!out) return cli_fail("classifier train: --out FILE is required");
    if (cli_out_ok("classifier train", "--out", out)) return 2;
    if (test_labels && !strcmp(test, "none"))
        return cli_fail("classifier train: --test-labels goes with a --test-data");
    dfs_set_threads((int)threads);
    tc.epochs = (int)epochs, tc.batch = (int)batch, tc.warmup = (int)warmup;
    tc.lr = (float)lr, tc.weight_decay = (float)wd, tc.seed = seed;

    dfs_dataset tr, te;
    memset(&te, 0, sizeof te);
    int rc = load_labelled(&tr, "--data", data, labels, limit);
    if (rc) return rc;
    int have_test = strcmp(test, "none") != 0;
    if (have_test && (rc = load_labelled(&te, "--test-data", test, test_labels, 0))) {
        dfs_dataset_free(&tr);
        return rc;
    }
    dfs_classifier_config cfg;
    dfs_classifier_config_default(&cfg);
    cfg.image_size = tr.h;
    cfg.in_channels = tr.c;
    cfg.num_classes = tr.num_classes > 1 ? tr.num_classes : cfg.num_classes;
    dfs_classifier *c = NULL;
    cJSON *tj = NULL;
    char *tjs = NULL;
    dfs_status s;
    if (tr.h != tr.w) {
        rc = cli_fail("classifier train: images must be square, not %dx%d", tr.h, tr.w);
        goto done;
    }
    if ((s = dfs_classifier_new(&c, &cfg, seed)) != DFS_OK) {
        rc = cli_fail_status(s);
        goto done;
    }
    if (have_test && (te.c != tr.c || te.h != tr.h || te.w != tr.w)) {
        rc = cli_fail(
            "classifier train: --test-data images are %dx%dx%d, the training images %dx%dx%d", te.c,
            te.h, te.w, tr.c, tr.h, tr.w);
        goto done;
    }
    for (int i = 0; have_test && i < te.n; i++) /* before training, not after its first epoch */
        if (te.labels[i] < 0 || te.labels[i] >= cfg.num_classes) {
            rc = cli_fail("classifier train: --test-data %s has label %d (image %d); the training data has %d "
                          "classes (give --test-data none, or a test set of the same classes)",
                          test, te.labels[i], i, cfg.num_classes);
            goto done;
        }
    fprintf(stderr,
            "training the classifier (%zu parameters) on %d images of %s, %d classes, "
            "%d epochs of batch %d, %ld threads\n",
            c->params->n, tr.n, data, cfg.num_classes, tc.epochs, tc.batch, threads);
    train_ctx t = {.c = c,
                   .test = have_test ? &te : NULL,
                   .epochs = tc.epochs,
                   .batch = tc.batch < tr.n ? tc.batch : tr.n,
                   .t0 = cli_now()};
    long bs = t.batch;
    t.total_steps = (long)tc.epochs * ((tr.n + bs - 1) / bs);
    t.epoch_loss = cJSON_CreateArray();
    t.epoch_acc = cJSON_CreateArray();
    cli_catch_signals();
    s = dfs_classifier_train(c, &tr, &tc, on_step, &t);
    double wall = cli_now() - t.t0;
    cli_progress_end(&t.bar);
    if (t.failed || (s != DFS_OK && s != DFS_ERR_INTERRUPTED)) {
        rc = t.failed ? cli_fail("%s", t.error) : cli_fail_status(s);
        cJSON_Delete(t.epoch_loss);
        cJSON_Delete(t.epoch_acc);
        goto done;
    }
    int interrupted = s == DFS_ERR_INTERRUPTED;
    int K = cfg.num_classes;
    int *conf = have_test ? calloc((size_t)K * K, sizeof(int)) : NULL;
    if (have_test && !conf) {
        rc = cli_fail("out of memory");
        goto done;
    }
    double acc = -1;
    if (have_test && (s = dfs_classifier_evaluate(c, &te, &acc, conf)) != DFS_OK) {
        free(conf);
        rc = cli_fail_status(s);
        goto done;
    }
    c->test_accuracy = acc;
    tj = cJSON_CreateObject();
    char cmd[2048];
    int len = snprintf(cmd, sizeof cmd, "diffuse classifier");
    for (int i = 0; i < argc && len < (int)sizeof cmd; i++)
        len += snprintf(cmd + len, sizeof cmd - (size_t)len, " %s", argv[i]);
    cJSON_AddStringToObject(tj, "command", cmd);
    cJSON_AddStringToObject(tj, "data", data);
    if (labels) cJSON_AddStringToObject(tj, "labels", labels);
    cJSON_AddNumberToObject(tj, "images", tr.n);
    cJSON_AddNumberToObject(tj, "epochs", tc.epochs);
    cJSON_AddNumberToObject(tj, "steps", (double)t.done_steps);
    cJSON_AddBoolToObject(tj, "interrupted", interrupted);
    cJSON_AddNumberToObject(tj, "batch", tc.batch);
    cJSON_AddNumberToObject(tj, "lr", lr);
    cJSON_AddNumberToObject(tj, "weight_decay", wd);
    cJSON_AddNumberToObject(tj, "warmup", tc.warmup);
    char sd[24];
    snprintf(sd, sizeof sd, "%llu", (unsigned long long)seed);
    cJSON_AddStringToObject(tj, "seed", sd);
    cJSON_AddNumberToObject(tj, "threads", (double)threads);
    cJSON_AddNumberToObject(tj, "wall_seconds", wall);
    cJSON_AddItemToObject(tj, "epoch_train_loss", t.epoch_loss);
    if (have_test) {
        cJSON_AddStringToObject(tj, "test_data", test);
        cJSON_AddNumberToObject(tj, "test_images", te.n);
        cJSON_AddItemToObject(tj, "epoch_test_accuracy", t.epoch_acc);
        cJSON *pc = cJSON_CreateArray();
        for (int k = 0; k < K; k++) {
            long n = 0;
            for (int j = 0; j < K; j++)
                n += conf[k * K + j];
            cJSON_AddItemToArray(pc, cJSON_CreateNumber(n ? (double)conf[k * K + k] / n : -1));
        }
        cJSON_AddItemToObject(tj, "test_class_accuracy", pc);
    } else {
        cJSON_Delete(t.epoch_acc);
    }
    tjs = cJSON_PrintUnformatted(tj);
    s = dfs_classifier_save(out, c, tjs);
    if (s != DFS_OK) {
        free(conf);
        rc = cli_fail_status(s);
        goto done;
    }
    char w[32];
    cli_fmt_time(w, sizeof w, wall);
    if (have_test) {
        printf("test accuracy %.4f on %d images of %s\n", acc, te.n, test);
        print_per_class(stdout, conf, K, &te);
    }
    fprintf(stderr, "%s after %ld steps (%s): wrote %s\n", interrupted ? "interrupted" : "done",
            t.done_steps, w, out);
    free(conf);
done:
    cJSON_free(tjs);
    cJSON_Delete(tj);
    dfs_classifier_free(c);
    dfs_dataset_free(&tr);
    dfs_dataset_free(&te);
    return rc;
}

/* ---- eval ----------------------------------------------------------------------------------- */

static int classifier_eval(int argc, char **argv) {
    const char *model = NULL, *data = "fashion-mnist-test", *labels = NULL;
    long limit = 0, threads = 2;
    enum { O_MODEL = 256, O_DATA, O_LABELS, O_LIMIT, O_THREADS };
    static const struct option opts[] = {{"model", required_argument, 0, O_MODEL},
                                         {"data", required_argument, 0, O_DATA},
                                         {"labels", required_argument, 0, O_LABELS},
                                         {"limit", required_argument, 0, O_LIMIT},
                                         {"threads", required_argument, 0, O_THREADS},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int o;
    optind = 1;
    opterr = 0;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'h':
            fputs(eval_help, stdout);
            return 0;
        case O_MODEL:
            model = optarg;
            break;
        case O_DATA:
            data = optarg;
            break;
        case O_LABELS:
            labels = optarg;
            break;
        case O_LIMIT:
            if (cli_int("--limit", optarg, 1, 100000000, &limit)) return 2;
            break;
        case O_THREADS:
            if (cli_int("--threads", optarg, 1, 256, &threads)) return 2;
            break;
        default:
            return cli_bad_option("classifier eval", argv);
        }
    }
    if (optind < argc) return cli_fail("classifier eval: unexpected argument '%s'", argv[optind]);
    if (!model) return cli_fail("classifier eval: --model FILE is required");
    dfs_set_threads((int)threads);
    dfs_classifier *c = NULL;
    dfs_status s = dfs_classifier_load(model, &c, NULL);
    if (s != DFS_OK) return cli_fail_status(s);
    dfs_dataset d;
    int rc = load_labelled(&d, "--data", data, labels, limit);
    if (rc) {
        dfs_classifier_free(c);
        return rc;
    }
    const int K = c->cfg.num_classes;
    int *conf = calloc((size_t)K * K, sizeof(int));
    double acc = 0, t0 = cli_now();
    if (!conf)
        rc = cli_fail("out of memory");
    else if ((s = dfs_classifier_evaluate(c, &d, &acc, conf)) != DFS_OK)
        rc = cli_fail_status(s);
    if (rc == 0) {
        long right = 0;
        for (int k = 0; k < K; k++)
            right += conf[k * K + k];
        printf("accuracy %.4f (%ld of %d images of %s, %.1f s)\n", acc, right, d.n, data,
               cli_now() - t0);
        print_per_class(stdout, conf, K, &d);
    }
    free(conf);
    dfs_dataset_free(&d);
    dfs_classifier_free(c);
    return rc;
}

int cmd_classifier(int argc, char **argv) {
    if (argc < 2)
        return cli_fail(
            "classifier: give a subcommand, train or eval (see diffuse classifier --help)");
    const char *sub = argv[1];
    if (!strcmp(sub, "--help") || !strcmp(sub, "-h") || !strcmp(sub, "help")) {
        fputs(classifier_help, stdout);
        return 0;
    }
    if (!strcmp(sub, "train")) return classifier_train(argc - 1, argv + 1);
    if (!strcmp(sub, "eval")) return classifier_eval(argc - 1, argv + 1);
    return cli_fail("classifier: unknown subcommand '%s' (train or eval)", sub);
}
