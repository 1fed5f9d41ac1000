/*
 * Fast isolation-forest scorer for fraudstream.model.detectors.forest.
 *
 * Plain CPython C API + buffer protocol, so it builds without numpy headers. The Python side
 * (forest.py) validates the arrays first; this file re-checks what it needs to stay memory-safe.
 *
 * Exactness: scikit-learn casts X to float32 and compares float32 <= float64 threshold, so each
 * input value is rounded through float before comparing. Per row the trees' path lengths are
 * summed in tree order, like sklearn's `depths += ...`, then score = 2 ** -(sum / denominator).
 *
 * Speed: leaves are rewritten as self-loops (threshold +inf, both children = the leaf itself),
 * so a tree is walked a fixed number of levels with a branch-free select. A block of rows walks
 * one tree in lockstep: independent loads overlap and there are no mispredicted branches.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK_ROWS 32
#define STACK_FEATURES 64

typedef struct {
    double threshold; /* +inf for a leaf, so every value goes "left" onto the leaf itself */
    int32_t feature;  /* 0 for a leaf (any valid column works) */
    int32_t child[2]; /* [left, right]; indexed by the comparison so no branch is needed */
    int32_t unused;
} Node;

typedef struct {
    PyObject_HEAD
    Node *nodes;
    double *leaf_value; /* path length of each node, read once the walk ends on a leaf */
    int32_t *roots;
    int32_t *depth; /* levels to walk in each tree: its maximum leaf depth */
    Py_ssize_t n_nodes;
    Py_ssize_t n_trees;
    Py_ssize_t n_features;
    double denominator;
} KernelObject;

/* ---- buffer helpers ------------------------------------------------------------------------ */

static char
buffer_kind(const Py_buffer *view)
{
    /* numpy reports native types as "i" / "d", possibly with a byte-order prefix. */
    const char *fmt = view->format ? view->format : "B";
    if (fmt[0] == '@' || fmt[0] == '=' || fmt[0] == '<') {
        fmt++;
    }
    if (fmt[1] != '\0') {
        return '?';
    }
    if (fmt[0] == 'd' && view->itemsize == 8) {
        return 'd';
    }
    if ((fmt[0] == 'i' || fmt[0] == 'l') && view->itemsize == 4) {
        return 'i';
    }
    return '?';
}

static int
get_vector(PyObject *obj, Py_buffer *view, char kind, Py_ssize_t length, const char *name)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        return -1;
    }
    if (buffer_kind(view) != kind) {
        PyErr_Format(PyExc_TypeError, "%s must be a contiguous %s buffer", name,
                     kind == 'd' ? "float64" : "int32");
        PyBuffer_Release(view);
        return -1;
    }
    if (length >= 0 && view->len / view->itemsize != length) {
        PyErr_Format(PyExc_ValueError, "%s has %zd items, expected %zd", name,
                     view->len / view->itemsize, length);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* ---- scoring core (no Python objects: runs without the GIL) -------------------------------- */

/* Round like sklearn's float32 cast; returns -1 if the value is NaN. */
static inline int
round_row(const double *src, double *dst, Py_ssize_t n)
{
    for (Py_ssize_t j = 0; j < n; j++) {
        double v = src[j];
        if (isnan(v)) {
            return -1;
        }
        dst[j] = (double)(float)v;
    }
    return 0;
}

static inline double
to_score(const KernelObject *k, double path_sum)
{
    /* sklearn sets the ratio to 1 when the denominator is 0 (max_samples <= 1). */
    if (k->denominator == 0.0) {
        return 0.5;
    }
    return pow(2.0, -(path_sum / k->denominator));
}

/* Sum path lengths over all trees for `n_rows` rounded rows stored back to back. */
static void
path_sums(const KernelObject *k, const double *rows, Py_ssize_t n_rows, double *sums)
{
    int32_t at[BLOCK_ROWS];
    const Node *nodes = k->nodes;
    const Py_ssize_t nf = k->n_features;

    for (Py_ssize_t r = 0; r < n_rows; r++) {
        sums[r] = 0.0;
    }
    for (Py_ssize_t t = 0; t < k->n_trees; t++) {
        const int32_t root = k->roots[t];
        const int32_t levels = k->depth[t];
        for (Py_ssize_t r = 0; r < n_rows; r++) {
            at[r] = root;
        }
        for (int32_t level = 0; level < levels; level++) {
            for (Py_ssize_t r = 0; r < n_rows; r++) {
                const Node *node = nodes + at[r];
                at[r] = node->child[!(rows[r * nf + node->feature] <= node->threshold)];
            }
        }
        for (Py_ssize_t r = 0; r < n_rows; r++) {
            sums[r] += k->leaf_value[at[r]];
        }
    }
}

/* ---- Kernel type --------------------------------------------------------------------------- */

static void
Kernel_dealloc(KernelObject *self)
{
    free(self->nodes);
    free(self->leaf_value);
    free(self->roots);
    free(self->depth);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
build_nodes(KernelObject *self, const int32_t *feature, const double *threshold,
            const int32_t *left, const int32_t *right, const double *value, const int32_t *roots)
{
    const Py_ssize_t n = self->n_nodes;
    int32_t *node_depth = calloc((size_t)n, sizeof(int32_t));
    if (node_depth == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t t = 0; t < self->n_trees; t++) {
        const Py_ssize_t start = roots[t];
        const Py_ssize_t end = (t + 1 < self->n_trees) ? roots[t + 1] : n;
        if (start < 0 || end <= start || end > n || (t == 0 && start != 0)) {
            PyErr_SetString(PyExc_ValueError, "roots must start at 0 and increase strictly");
            goto fail;
        }
        int32_t deepest = 0;
        /* Children always come after their parent, so one forward pass settles every depth. */
        for (Py_ssize_t i = start; i < end; i++) {
            Node *node = self->nodes + i;
            if (!isfinite(value[i])) {
                PyErr_Format(PyExc_ValueError, "node %zd has a non-finite path length", i);
                goto fail;
            }
            self->leaf_value[i] = value[i];
            if (feature[i] < 0) {
                node->threshold = INFINITY;
                node->feature = 0;
                node->child[0] = node->child[1] = (int32_t)i;
                if (node_depth[i] > deepest) {
                    deepest = node_depth[i];
                }
                continue;
            }
            if (feature[i] >= self->n_features || !(left[i] > i && left[i] < end) ||
                !(right[i] > i && right[i] < end) || isnan(threshold[i])) {
                PyErr_Format(PyExc_ValueError, "node %zd is not a valid split", i);
                goto fail;
            }
            node->threshold = threshold[i];
            node->feature = feature[i];
            node->child[0] = left[i];
            node->child[1] = right[i];
            int32_t below = node_depth[i] + 1;
            if (node_depth[left[i]] < below) {
                node_depth[left[i]] = below;
            }
            if (node_depth[right[i]] < below) {
                node_depth[right[i]] = below;
            }
        }
        self->depth[t] = deepest;
    }
    free(node_depth);
    return 0;
fail:
    free(node_depth);
    return -1;
}

static int
Kernel_init(KernelObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"feature", "threshold", "left",       "right",       "value",
                             "roots",   "n_features", "denominator", NULL};
    PyObject *objs[6];
    Py_buffer views[6];
    static const char kinds[6] = {'i', 'd', 'i', 'i', 'd', 'i'};
    static const char *names[6] = {"feature", "threshold", "left", "right", "value", "roots"};
    Py_ssize_t n_features;
    double denominator;
    int got = 0, status = -1;

    if (self->nodes != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Kernel is already initialised");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOOOOnd", kwlist, &objs[0], &objs[1],
                                     &objs[2], &objs[3], &objs[4], &objs[5], &n_features,
                                     &denominator)) {
        return -1;
    }
    if (n_features < 1 || !(denominator >= 0.0) || !isfinite(denominator)) {
        PyErr_SetString(PyExc_ValueError, "n_features must be >= 1 and denominator >= 0");
        return -1;
    }
    for (; got < 6; got++) {
        Py_ssize_t length = (got == 0 || got == 5) ? -1 : views[0].len / 4;
        if (get_vector(objs[got], &views[got], kinds[got], length, names[got]) < 0) {
            goto done;
        }
    }
    self->n_nodes = views[0].len / 4;
    self->n_trees = views[5].len / 4;
    self->n_features = n_features;
    self->denominator = denominator;
    if (self->n_nodes < 1 || self->n_trees < 1 || self->n_nodes > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "a forest needs at least one tree and one node");
        goto done;
    }
    self->nodes = calloc((size_t)self->n_nodes, sizeof(Node));
    self->leaf_value = calloc((size_t)self->n_nodes, sizeof(double));
    self->roots = calloc((size_t)self->n_trees, sizeof(int32_t));
    self->depth = calloc((size_t)self->n_trees, sizeof(int32_t));
    if (!self->nodes || !self->leaf_value || !self->roots || !self->depth) {
        PyErr_NoMemory();
        goto done;
    }
    memcpy(self->roots, views[5].buf, (size_t)self->n_trees * sizeof(int32_t));
    status = build_nodes(self, views[0].buf, views[1].buf, views[2].buf, views[3].buf,
                         views[4].buf, self->roots);
done:
    for (int i = 0; i < got; i++) {
        PyBuffer_Release(&views[i]);
    }
    if (status < 0) {
        free(self->nodes);
        free(self->leaf_value);
        free(self->roots);
        free(self->depth);
        self->nodes = NULL;
        self->leaf_value = NULL;
        self->roots = NULL;
        self->depth = NULL;
    }
    return status;
}

static int
check_ready(const KernelObject *self)
{
    if (self->nodes == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Kernel was not initialised");
        return -1;
    }
    return 0;
}

/* Read one row from a list, tuple, float64 buffer or any sequence of numbers, rounded. */
static int
read_row(const KernelObject *self, PyObject *obj, double *row)
{
    const Py_ssize_t nf = self->n_features;
    if (!PyList_CheckExact(obj) && !PyTuple_CheckExact(obj) && PyObject_CheckBuffer(obj)) {
        Py_buffer view;
        if (PyObject_GetBuffer(obj, &view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) == 0) {
            if (buffer_kind(&view) == 'd' && view.ndim == 1) {
                int ok = view.len / 8 == nf;
                if (ok && round_row(view.buf, row, nf) < 0) {
                    PyBuffer_Release(&view);
                    PyErr_SetString(PyExc_ValueError, "x contains NaN");
                    return -1;
                }
                PyBuffer_Release(&view);
                if (!ok) {
                    PyErr_Format(PyExc_ValueError, "expected %zd features, got %zd", nf,
                                 view.len / 8);
                    return -1;
                }
                return 0;
            }
            PyBuffer_Release(&view);
        }
        else {
            PyErr_Clear(); /* e.g. a strided array: the sequence path below still works */
        }
    }
    PyObject *seq = PySequence_Fast(obj, "x must be a sequence of numbers");
    if (seq == NULL) {
        return -1;
    }
    if (PySequence_Fast_GET_SIZE(seq) != nf) {
        PyErr_Format(PyExc_ValueError, "expected %zd features, got %zd", nf,
                     PySequence_Fast_GET_SIZE(seq));
        Py_DECREF(seq);
        return -1;
    }
    PyObject **items = PySequence_Fast_ITEMS(seq);
    for (Py_ssize_t j = 0; j < nf; j++) {
        double v = PyFloat_CheckExact(items[j]) ? PyFloat_AS_DOUBLE(items[j])
                                                : PyFloat_AsDouble(items[j]);
        if (v == -1.0 && PyErr_Occurred()) {
            Py_DECREF(seq);
            return -1;
        }
        if (isnan(v)) {
            Py_DECREF(seq);
            PyErr_SetString(PyExc_ValueError, "x contains NaN");
            return -1;
        }
        row[j] = (double)(float)v;
    }
    Py_DECREF(seq);
    return 0;
}

static PyObject *
Kernel_score_one(KernelObject *self, PyObject *x)
{
    double stack_row[STACK_FEATURES];
    double *row = stack_row;
    double sum;
    if (check_ready(self) < 0) {
        return NULL;
    }
    if (self->n_features > STACK_FEATURES) {
        row = malloc((size_t)self->n_features * sizeof(double));
        if (row == NULL) {
            return PyErr_NoMemory();
        }
    }
    if (read_row(self, x, row) < 0) {
        if (row != stack_row) {
            free(row);
        }
        return NULL;
    }
    path_sums(self, row, 1, &sum);
    if (row != stack_row) {
        free(row);
    }
    return PyFloat_FromDouble(to_score(self, sum));
}

static PyObject *
Kernel_score_many(KernelObject *self, PyObject *args)
{
    PyObject *x_obj, *out_obj;
    Py_buffer x, out;
    Py_ssize_t n_rows, nan_row = -1;
    double *block;

    if (check_ready(self) < 0 || !PyArg_ParseTuple(args, "OO", &x_obj, &out_obj)) {
        return NULL;
    }
    if (get_vector(x_obj, &x, 'd', -1, "X") < 0) {
        return NULL;
    }
    n_rows = x.len / 8 / self->n_features;
    if (x.len / 8 != n_rows * self->n_features) {
        PyErr_Format(PyExc_ValueError, "X size is not a multiple of %zd features",
                     self->n_features);
        PyBuffer_Release(&x);
        return NULL;
    }
    if (PyObject_GetBuffer(out_obj, &out, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE) <
        0) {
        PyBuffer_Release(&x);
        return NULL;
    }
    if (buffer_kind(&out) != 'd' || out.len / 8 != n_rows) {
        PyErr_Format(PyExc_ValueError, "out must be a writable float64 buffer of %zd items",
                     n_rows);
        goto fail;
    }
    block = malloc((size_t)BLOCK_ROWS * (size_t)self->n_features * sizeof(double));
    if (block == NULL) {
        PyErr_NoMemory();
        goto fail;
    }

    Py_BEGIN_ALLOW_THREADS
    const double *src = x.buf;
    double *dst = out.buf;
    double sums[BLOCK_ROWS];
    for (Py_ssize_t start = 0; start < n_rows && nan_row < 0; start += BLOCK_ROWS) {
        Py_ssize_t rows = n_rows - start < BLOCK_ROWS ? n_rows - start : BLOCK_ROWS;
        for (Py_ssize_t r = 0; r < rows; r++) {
            const Py_ssize_t at = (start + r) * self->n_features;
            if (round_row(src + at, block + r * self->n_features, self->n_features) < 0) {
                nan_row = start + r;
                break;
            }
        }
        if (nan_row >= 0) {
            break;
        }
        path_sums(self, block, rows, sums);
        for (Py_ssize_t r = 0; r < rows; r++) {
            dst[start + r] = to_score(self, sums[r]);
        }
    }
    Py_END_ALLOW_THREADS

    free(block);
    PyBuffer_Release(&x);
    PyBuffer_Release(&out);
    if (nan_row >= 0) {
        PyErr_Format(PyExc_ValueError, "X contains NaN (row %zd)", nan_row);
        return NULL;
    }
    Py_RETURN_NONE;
fail:
    PyBuffer_Release(&x);
    PyBuffer_Release(&out);
    return NULL;
}

static PyMethodDef Kernel_methods[] = {
    {"score_one", (PyCFunction)Kernel_score_one, METH_O,
     "score_one(x) -> float: anomaly score of one row (list, tuple or float64 buffer)."},
    {"score_many", (PyCFunction)Kernel_score_many, METH_VARARGS,
     "score_many(X, out) -> None: score C-contiguous float64 rows of X into out."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject KernelType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "fraudstream.model.detectors._forest.Kernel",
    .tp_doc = "Kernel(feature, threshold, left, right, value, roots, n_features, denominator)\n"
              "A compiled isolation forest; the arrays are copied.",
    .tp_basicsize = sizeof(KernelObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Kernel_init,
    .tp_dealloc = (destructor)Kernel_dealloc,
    .tp_methods = Kernel_methods,
};

static struct PyModuleDef forest_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_forest",
    .m_doc = "C kernel that scores a compiled isolation forest exactly like scikit-learn.",
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__forest(void)
{
    if (PyType_Ready(&KernelType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&forest_module);
    if (module == NULL) {
        return NULL;
    }
    Py_INCREF(&KernelType);
    if (PyModule_AddObject(module, "Kernel", (PyObject *)&KernelType) < 0) {
        Py_DECREF(&KernelType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
