/* resilient._speedups: the hottest paths in C.
 *
 * - `GCRA`: the memory token bucket's decision (below).
 * - `Steps`: the claim and complete of idempotency records in memory (see its section).
 * - `RetryCall`: a function decorated with a plain retry (or a fallback), its success path
 *   (see its section).
 * - `TimeoutHook`: a sync timeout's `__enter__` and `__exit__` (see its section).
 * - `Durations`: a histogram's durations until they are counted into its buckets.
 *
 * `GCRA` is what `resilient.stores._memory._GCRA` builds in pure Python (the closure in
 * `_GCRA._build`), computed with the same formulas (`resilient._rate_limit.gcra`) on 64-bit
 * integer ticks. The module is optional: without it (no compiler at install time, another
 * interpreter, or RESILIENT_NO_EXTENSIONS set), the pure Python version runs; the tests run
 * both and compare them with the reference function.
 *
 * Concurrency. The global key's state is a C field updated with no Python code between the
 * read and the write, so the GIL makes the update atomic (setup.py does not build this
 * module for free-threaded interpreters). Keyed state lives in the store's OrderedDict, shared
 * with Python code (insertion, expiry, eviction, len, clear), so keyed decisions take the
 * store's lock, as the Python version does.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <time.h>
#if PY_VERSION_HEX >= 0x030C0000
#define OBJECT_EX Py_T_OBJECT_EX
#define MEMBER_READONLY Py_READONLY
#else
#include <structmember.h>
#define OBJECT_EX T_OBJECT_EX
#define MEMBER_READONLY READONLY
#endif

#define TICKS_PER_SECOND 1000000LL
/* Clock readings beyond this many ticks (about 36,000 years) are refused: every sum of a
 * reading and a span (<= 2**50) then stays far inside a 64-bit integer. */
#define MAX_TICKS (1LL << 60)
/* Stored arrival times stay within +-2**62 (the Python side's "no state" is -2**62), so a
 * time plus a span never leaves a 64-bit integer. */
#define MAX_TAT (1LL << 62)

static PyObject *ONE;        /* the int 1 (a cached small int: compared by identity) */
static PyObject *EMPTY;      /* "" */
static PyObject *ZERO_FLOAT; /* 0.0, the retry_after of every granted decision */
static PyObject *ACTIVE;     /* "active" */
static PyObject *MAX_KEYS;   /* "max_keys", "now", "move_to_end": interned attribute names */
static PyObject *NOW;
static PyObject *MOVE_TO_END;

typedef struct {
    PyObject_HEAD
    long long interval;  /* ticks per unit */
    long long tolerance; /* capacity * interval */
    long long tat;       /* the global key's theoretical arrival time */
    PyObject *capacity;  /* int: every Decision's `limit` */
    PyTypeObject *decision;
    PyObject *acquire; /* the store lock's bound acquire / release */
    PyObject *release;
    PyObject *data; /* the store's OrderedDict: (binding, key) -> [tat] */
    PyObject *move_to_end;
    PyObject *insert; /* store._insert(composite, entry), called with the lock held */
    PyObject *binding;
    PyObject *check_cost; /* limiter._check_cost(cost) -> int, or raises */
    PyObject *monotonic;  /* the clock's monotonic(), or None for the system clock */
    PyObject *honest_wait; /* resilient._rate_limit.honest_wait, for denials on other clocks */
    PyObject *hub;        /* the event hub: `denied` is called only when hub.active */
    PyObject *denied;     /* denied(key, cost, retry_after) emits RateLimited */
    PyObject *storage_key; /* resilient.stores._keys.storage_key */
} GCRAObject;

/* -- keys ----------------------------------------------------------------------------- */

/* Whether `storage_key(key)` is `key` itself, decided without calling it: an exact str of at
 * most 64 printable ASCII characters without "{", "}" or space, and not 64 lowercase hex
 * characters (see resilient/stores/_keys.py, which this mirrors). */
static int
stored_verbatim(PyObject *key)
{
    if (!PyUnicode_CheckExact(key) || !PyUnicode_IS_ASCII(key)) {
        return 0;
    }
    Py_ssize_t length = PyUnicode_GET_LENGTH(key);
    if (length > 64) {
        return 0;
    }
    const unsigned char *text = PyUnicode_1BYTE_DATA(key);
    int hex = length == 64;
    for (Py_ssize_t i = 0; i < length; i++) {
        unsigned char c = text[i];
        if (c < 0x21 || c > 0x7e || c == '{' || c == '}') {
            return 0;
        }
        if (hex && !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            hex = 0;
        }
    }
    return !hex;
}

/* -- clock ---------------------------------------------------------------------------- */

static int
read_now(PyObject *monotonic, long long *now, double *seconds_out)
{
    if (monotonic == Py_None) {
        /* time.monotonic_ns() // 1000, as the Python version reads it: on Linux both are
         * CLOCK_MONOTONIC. Elsewhere, ask time.monotonic_ns's own clock through Python. */
#if defined(__linux__) && defined(CLOCK_MONOTONIC)
        struct timespec ts;
        if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
            PyErr_SetFromErrno(PyExc_OSError);
            return -1;
        }
        *now = (long long)ts.tv_sec * TICKS_PER_SECOND + ts.tv_nsec / 1000;
        return 0;
#else
        PyErr_SetString(PyExc_RuntimeError, "system clock not available to _speedups");
        return -1;
#endif
    }
    /* round(clock.monotonic() * 1_000_000): Python rounds half to even. */
    PyObject *reading = PyObject_CallNoArgs(monotonic);
    if (reading == NULL) {
        return -1;
    }
    double seconds = PyFloat_AsDouble(reading);
    if (seconds == -1.0 && PyErr_Occurred()) {
        Py_DECREF(reading);
        return -1;
    }
    *seconds_out = seconds;
    double ticks = seconds * 1000000.0;
    if (isnan(ticks) || isinf(ticks)) { /* what round() raises for them */
        PyErr_SetString(isnan(ticks) ? PyExc_ValueError : PyExc_OverflowError,
                        isnan(ticks) ? "cannot convert float NaN to integer"
                                     : "cannot convert float infinity to integer");
        Py_DECREF(reading);
        return -1;
    }
    double rounded = round(ticks);
    if (fabs(ticks - rounded) == 0.5) {
        rounded = 2.0 * round(ticks / 2.0);
    }
    if (!(fabs(rounded) < (double)MAX_TICKS)) {
        PyErr_Format(PyExc_OverflowError, "clock reading out of range: %R seconds", reading);
        Py_DECREF(reading);
        return -1;
    }
    Py_DECREF(reading);
    *now = (long long)rounded;
    return 0;
}

/* -- decisions ------------------------------------------------------------------------ */

/* `honest_wait(reading, now, ticks)` of resilient/_rate_limit.py: ticks / TICKS_PER_SECOND
 * when waiting that long from `reading` is enough (the common case, decided here with the same
 * doubles), else the Python function's answer. */
static PyObject *
honest_seconds(GCRAObject *self, double reading, long long now, long long ticks)
{
    double wait = (double)ticks / (double)TICKS_PER_SECOND;
    double reached = nearbyint((reading + wait) * (double)TICKS_PER_SECOND); /* half to even */
    if (reached >= 9.2e18 || (reached > -9.2e18 && (long long)reached >= now + ticks)) {
        return PyFloat_FromDouble(wait);
    }
    return PyObject_CallFunction(self->honest_wait, "dLL", reading, now, ticks);
}

static PyObject *
make_decision(GCRAObject *self, int allowed, long long remaining, long long retry_after,
              long long reset_after, PyObject *retry_seconds, double reading, long long now)
{
    /* What tuple.__new__(Decision, items) does, without building the items tuple first. */
    PyObject *decision = self->decision->tp_alloc(self->decision, 5);
    if (decision == NULL) {
        return NULL;
    }
#if PY_VERSION_HEX >= 0x030E0000
    /* Tuples cache their hash from 3.14 on; -1 is "not computed" (tp_alloc leaves 0). */
    ((PyTupleObject *)decision)->ob_hash = -1;
#endif
    PyObject *flag = allowed ? Py_True : Py_False;
    Py_INCREF(flag);
    PyTuple_SET_ITEM(decision, 0, flag);
    Py_INCREF(self->capacity);
    PyTuple_SET_ITEM(decision, 1, self->capacity);
    PyObject *item = PyLong_FromLongLong(remaining);
    if (item == NULL) {
        goto error;
    }
    PyTuple_SET_ITEM(decision, 2, item);
    if (allowed) {
        Py_INCREF(ZERO_FLOAT);
        item = ZERO_FLOAT;
    }
    else if (retry_seconds != NULL) {
        Py_INCREF(retry_seconds);
        item = retry_seconds;
    }
    else {
        /* An int / int in Python is correctly rounded; so is this, as both are exact. */
        item = PyFloat_FromDouble((double)retry_after / (double)TICKS_PER_SECOND);
        if (item == NULL) {
            goto error;
        }
    }
    PyTuple_SET_ITEM(decision, 3, item);
    if (self->monotonic != Py_None) {
        /* Rounded as retry_after is: waiting exactly that long on the clock is enough. */
        item = honest_seconds(self, reading, now, reset_after);
    }
    else {
        item = PyFloat_FromDouble((double)reset_after / (double)TICKS_PER_SECOND);
    }
    if (item == NULL) {
        goto error;
    }
    PyTuple_SET_ITEM(decision, 4, item);
    return decision;
error:
    Py_DECREF(decision);
    return NULL;
}

/* The pending exception, set aside while the lock is released, then raised or dropped. */
typedef struct {
#if PY_VERSION_HEX >= 0x030C0000
    PyObject *exception;
#else
    PyObject *type, *value, *traceback;
#endif
} SavedError;

static int
save_error(SavedError *saved) /* 1 if there was one */
{
#if PY_VERSION_HEX >= 0x030C0000
    saved->exception = PyErr_GetRaisedException();
    return saved->exception != NULL;
#else
    PyErr_Fetch(&saved->type, &saved->value, &saved->traceback);
    return saved->type != NULL;
#endif
}

static void
restore_error(SavedError *saved)
{
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(saved->exception);
#else
    PyErr_Restore(saved->type, saved->value, saved->traceback);
#endif
}

/* Another error is pending (the lock's release failed): make the saved one its context, as
 * a `finally:` block would. */
static void
chain_error(SavedError *saved)
{
#if PY_VERSION_HEX >= 0x030C0000
    PyObject *current = PyErr_GetRaisedException();
    PyException_SetContext(current, saved->exception); /* steals */
    PyErr_SetRaisedException(current);
#else
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyErr_NormalizeException(&type, &value, &traceback);
    PyErr_NormalizeException(&saved->type, &saved->value, &saved->traceback);
    if (saved->traceback != NULL) {
        PyException_SetTraceback(saved->value, saved->traceback);
        Py_DECREF(saved->traceback);
    }
    Py_DECREF(saved->type);
    PyException_SetContext(value, saved->value); /* steals */
    PyErr_Restore(type, value, traceback);
#endif
}

static int
lock_call(PyObject *method)
{
    PyObject *result = PyObject_CallNoArgs(method);
    if (result == NULL) {
        return -1;
    }
    Py_DECREF(result);
    return 0;
}

/* The keyed part of a decision, with the store's lock held. Sets *tat to the key's TAT
 * (at least now) and returns 1 if granted (the entry updated or inserted), 0 if not, -1 on
 * error. */
static int
decide_keyed(GCRAObject *self, PyObject *composite, long long now, long long step,
             long long *tat_out)
{
    PyObject *entry = PyDict_GetItemWithError(self->data, composite); /* borrowed */
    long long tat = now;
    if (entry == NULL) {
        if (PyErr_Occurred()) {
            return -1;
        }
    }
    else {
        Py_INCREF(entry);
        PyObject *moved = PyObject_CallOneArg(self->move_to_end, composite);
        if (moved == NULL) {
            Py_DECREF(entry);
            return -1;
        }
        Py_DECREF(moved);
        if (!PyList_CheckExact(entry) || PyList_GET_SIZE(entry) < 1) {
            Py_DECREF(entry);
            PyErr_SetString(PyExc_RuntimeError, "corrupt memory store entry");
            return -1;
        }
        long long stored = PyLong_AsLongLong(PyList_GET_ITEM(entry, 0));
        if (stored == -1 && PyErr_Occurred()) {
            Py_DECREF(entry);
            return -1;
        }
        if (stored > MAX_TAT || stored < -MAX_TAT) {
            Py_DECREF(entry);
            PyErr_SetString(PyExc_RuntimeError, "corrupt memory store entry");
            return -1;
        }
        if (stored > tat) {
            tat = stored;
        }
    }
    *tat_out = tat;
    long long new_tat = tat + step;
    if (new_tat - now > self->tolerance) {
        Py_XDECREF(entry);
        return 0;
    }
    PyObject *value = PyLong_FromLongLong(new_tat);
    if (value == NULL) {
        Py_XDECREF(entry);
        return -1;
    }
    if (entry != NULL) {
        PyList_SetItem(entry, 0, value); /* steals value */
        Py_DECREF(entry);
        return 1;
    }
    PyObject *fresh = PyList_New(1);
    if (fresh == NULL) {
        Py_DECREF(value);
        return -1;
    }
    PyList_SET_ITEM(fresh, 0, value);
    PyObject *done = PyObject_CallFunctionObjArgs(self->insert, composite, fresh, NULL);
    Py_DECREF(fresh);
    if (done == NULL) {
        return -1;
    }
    Py_DECREF(done);
    return 1;
}

static PyObject *
decide(GCRAObject *self, PyObject *key, PyObject *cost, int public)
{
    long long units = 1;
    if (cost != ONE) {
        PyObject *checked = PyObject_CallOneArg(self->check_cost, cost);
        if (checked == NULL) {
            return NULL;
        }
        units = PyLong_AsLongLong(checked);
        Py_DECREF(checked);
        if (units == -1 && PyErr_Occurred()) {
            return NULL;
        }
    }
    /* check_cost bounds units by the capacity; checked again, as an overflow would be
     * undefined behaviour: step stays at most tolerance (<= 2**60). */
    if (units < 1 || units > self->tolerance / self->interval) {
        PyErr_SetString(PyExc_ValueError, "cost out of range");
        return NULL;
    }
    long long step = units * self->interval;
    /* The key as stored (a new reference): TypeError for a non-str, a digest if need be. */
    PyObject *stored;
    if (stored_verbatim(key)) {
        Py_INCREF(key);
        stored = key;
    }
    else {
        stored = PyObject_CallOneArg(self->storage_key, key);
        if (stored == NULL) {
            return NULL;
        }
        if (!PyUnicode_Check(stored)) {
            Py_DECREF(stored);
            PyErr_SetString(PyExc_TypeError, "storage_key must return a str");
            return NULL;
        }
    }
    int keyed = PyUnicode_GET_LENGTH(stored) != 0;
    long long now;
    double reading = 0.0;
    if (read_now(self->monotonic, &now, &reading) < 0) {
        Py_DECREF(stored);
        return NULL;
    }
    long long tat = now;
    int allowed;
    if (!keyed) {
        Py_DECREF(stored);
        /* No Python code runs from here to the write: the GIL makes it atomic. */
        tat = self->tat > now ? self->tat : now;
        allowed = tat + step - now <= self->tolerance;
        if (allowed) {
            self->tat = tat + step;
        }
    }
    else {
        PyObject *composite = PyTuple_Pack(2, self->binding, stored);
        Py_DECREF(stored);
        if (composite == NULL) {
            return NULL;
        }
        if (lock_call(self->acquire) < 0) {
            Py_DECREF(composite);
            return NULL;
        }
        allowed = decide_keyed(self, composite, now, step, &tat);
        Py_DECREF(composite);
        /* Release even after an error (set aside meanwhile). If releasing fails too, its
         * error is raised with the first as its context, as after a `finally:` block. */
        SavedError error;
        int failed = save_error(&error);
        int released = lock_call(self->release);
        if (failed) {
            if (released == 0) {
                restore_error(&error);
            }
            else {
                chain_error(&error);
            }
            return NULL;
        }
        if (released < 0) {
            return NULL;
        }
    }
    long long new_tat = tat + step;
    if (allowed) {
        long long backlog = new_tat - now;
        return make_decision(self, 1, (self->tolerance - backlog) / self->interval, 0, backlog,
                             NULL, reading, now);
    }
    long long backlog = tat - now;
    long long retry_after = new_tat - self->tolerance - now;
    long long remaining =
        backlog <= self->tolerance ? (self->tolerance - backlog) / self->interval : 0;
    /* On another clock than the system's, the wait is rounded so that waiting exactly that
     * long is enough (see honest_wait); a denial only, so a Python call is affordable. */
    PyObject *seconds = NULL;
    if (self->monotonic != Py_None) {
        seconds = PyObject_CallFunction(self->honest_wait, "dLL", reading, now, retry_after);
        if (seconds == NULL) {
            return NULL;
        }
    }
    if (public) {
        PyObject *active = PyObject_GetAttr(self->hub, ACTIVE);
        if (active == NULL) {
            Py_XDECREF(seconds);
            return NULL;
        }
        int listening = PyObject_IsTrue(active);
        Py_DECREF(active);
        if (listening < 0) {
            Py_XDECREF(seconds);
            return NULL;
        }
        if (listening) {
            PyObject *hint = seconds;
            if (hint == NULL) {
                hint = PyFloat_FromDouble((double)retry_after / (double)TICKS_PER_SECOND);
                if (hint == NULL) {
                    return NULL;
                }
            }
            else {
                Py_INCREF(hint);
            }
            PyObject *done = PyObject_CallFunctionObjArgs(self->denied, key, cost, hint, NULL);
            Py_DECREF(hint);
            if (done == NULL) {
                Py_XDECREF(seconds);
                return NULL;
            }
            Py_DECREF(done);
        }
    }
    PyObject *decision =
        make_decision(self, 0, remaining, retry_after, backlog, seconds, reading, now);
    Py_XDECREF(seconds);
    return decision;
}

/* -- methods -------------------------------------------------------------------------- */

static int
take_argument(PyObject **slot, PyObject *value, const char *name, const char *function)
{
    if (*slot != NULL) {
        PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%s'", function,
                     name);
        return -1;
    }
    *slot = value;
    return 0;
}

/* try_acquire(key="", cost=1), parsed like a Python function's arguments. */
static PyObject *
GCRA_try_acquire(GCRAObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    /* In the order CPython checks a function's arguments: keywords (unknown, or given
     * positionally too), then the number of positional arguments. */
    PyObject *key = nargs > 0 ? args[0] : NULL;
    PyObject *cost = nargs > 1 ? args[1] : NULL;
    if (kwnames != NULL) {
        Py_ssize_t count = PyTuple_GET_SIZE(kwnames);
        for (Py_ssize_t i = 0; i < count; i++) {
            PyObject *name = PyTuple_GET_ITEM(kwnames, i);
            PyObject *value = args[nargs + i];
            int status;
            if (PyUnicode_CompareWithASCIIString(name, "key") == 0) {
                status = take_argument(&key, value, "key", "TokenBucket.try_acquire");
            }
            else if (PyUnicode_CompareWithASCIIString(name, "cost") == 0) {
                status = take_argument(&cost, value, "cost", "TokenBucket.try_acquire");
            }
            else {
                PyErr_Format(PyExc_TypeError,
                             "TokenBucket.try_acquire() got an unexpected keyword argument '%U'",
                             name);
                return NULL;
            }
            if (status < 0) {
                return NULL;
            }
        }
    }
    if (nargs > 2) {
        PyErr_Format(PyExc_TypeError,
                     "TokenBucket.try_acquire() takes from 0 to 2 positional arguments but %zd "
                     "were given",
                     nargs);
        return NULL;
    }
    return decide(self, key == NULL ? EMPTY : key, cost == NULL ? ONE : cost, 1);
}

/* decide(key, cost): the same decision without the RateLimited event (the limiter's
 * acquire() emits its own). */
static PyObject *
GCRA_decide(GCRAObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "decide() takes 2 positional arguments but %zd were given",
                     nargs);
        return NULL;
    }
    return decide(self, args[0], args[1], 0);
}

static PyMethodDef GCRA_methods[] = {
    {"try_acquire", (PyCFunction)(void (*)(void))GCRA_try_acquire,
     METH_FASTCALL | METH_KEYWORDS,
     "try_acquire($self, /, key='', cost=1)\n--\n\n"
     "Take ``cost`` units for ``key`` if they are available now; never waits.\n\n"
     "Emits ``RateLimited`` when refused and the event hub has listeners."},
    {"decide", (PyCFunction)(void (*)(void))GCRA_decide, METH_FASTCALL,
     "decide($self, key, cost, /)\n--\n\nThe decision, without the event."},
    {NULL, NULL, 0, NULL},
};

/* -- the global key's state, for the Python side (len(), clear()) ----------------------- */

static PyObject *
GCRA_get_tat(GCRAObject *self, void *closure)
{
    return PyLong_FromLongLong(self->tat);
}

static int
GCRA_set_tat(GCRAObject *self, PyObject *value, void *closure)
{
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete tat");
        return -1;
    }
    long long tat = PyLong_AsLongLong(value);
    if (tat == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (tat > MAX_TAT || tat < -MAX_TAT) {
        PyErr_SetString(PyExc_ValueError, "tat must be within +-2**62");
        return -1;
    }
    self->tat = tat;
    return 0;
}

static PyGetSetDef GCRA_getset[] = {
    {"tat", (getter)GCRA_get_tat, (setter)GCRA_set_tat,
     "The global key's theoretical arrival time, in ticks.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

/* -- life cycle ----------------------------------------------------------------------- */

static PyObject *
GCRA_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"interval",  "tolerance",  "capacity", "tat",       "decision",
                            "lock",      "data",       "insert",   "binding",   "check_cost",
                            "monotonic", "hub",        "denied",   "storage_key",
                            "honest_wait", NULL};
    long long interval, tolerance, tat;
    PyObject *capacity, *decision, *lock, *data, *insert, *binding, *check_cost, *monotonic,
        *hub, *denied, *storage_key, *honest_wait;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "$LLOLOOOOOOOOOOO:GCRA", names, &interval,
                                     &tolerance, &capacity, &tat, &decision, &lock, &data,
                                     &insert, &binding, &check_cost, &monotonic, &hub, &denied,
                                     &storage_key, &honest_wait)) {
        return NULL;
    }
    if (interval < 1 || tolerance < interval || tolerance > MAX_TICKS) {
        PyErr_SetString(PyExc_ValueError, "GCRA needs 1 <= interval <= tolerance <= 2**60");
        return NULL;
    }
    if (tat > MAX_TAT || tat < -MAX_TAT) {
        PyErr_SetString(PyExc_ValueError, "tat must be within +-2**62");
        return NULL;
    }
    if (!PyType_Check(decision) ||
        !PyType_IsSubtype((PyTypeObject *)decision, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "decision must be a tuple subclass");
        return NULL;
    }
    if (!PyDict_Check(data)) {
        PyErr_SetString(PyExc_TypeError, "data must be a dict");
        return NULL;
    }
    GCRAObject *self = (GCRAObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->interval = interval;
    self->tolerance = tolerance;
    self->tat = tat;
    Py_INCREF(capacity);
    self->capacity = capacity;
    Py_INCREF(decision);
    self->decision = (PyTypeObject *)decision;
    Py_INCREF(data);
    self->data = data;
    Py_INCREF(insert);
    self->insert = insert;
    Py_INCREF(binding);
    self->binding = binding;
    Py_INCREF(check_cost);
    self->check_cost = check_cost;
    Py_INCREF(monotonic);
    self->monotonic = monotonic;
    Py_INCREF(hub);
    self->hub = hub;
    Py_INCREF(denied);
    self->denied = denied;
    Py_INCREF(storage_key);
    self->storage_key = storage_key;
    Py_INCREF(honest_wait);
    self->honest_wait = honest_wait;
    if ((self->acquire = PyObject_GetAttrString(lock, "acquire")) == NULL ||
        (self->release = PyObject_GetAttrString(lock, "release")) == NULL ||
        (self->move_to_end = PyObject_GetAttrString(data, "move_to_end")) == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static int
GCRA_traverse(GCRAObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->capacity);
    Py_VISIT(self->decision);
    Py_VISIT(self->acquire);
    Py_VISIT(self->release);
    Py_VISIT(self->data);
    Py_VISIT(self->move_to_end);
    Py_VISIT(self->insert);
    Py_VISIT(self->binding);
    Py_VISIT(self->check_cost);
    Py_VISIT(self->monotonic);
    Py_VISIT(self->hub);
    Py_VISIT(self->denied);
    Py_VISIT(self->storage_key);
    Py_VISIT(self->honest_wait);
    return 0;
}

static int
GCRA_clear(GCRAObject *self)
{
    Py_CLEAR(self->capacity);
    Py_CLEAR(self->decision);
    Py_CLEAR(self->acquire);
    Py_CLEAR(self->release);
    Py_CLEAR(self->data);
    Py_CLEAR(self->move_to_end);
    Py_CLEAR(self->insert);
    Py_CLEAR(self->binding);
    Py_CLEAR(self->check_cost);
    Py_CLEAR(self->monotonic);
    Py_CLEAR(self->hub);
    Py_CLEAR(self->denied);
    Py_CLEAR(self->storage_key);
    Py_CLEAR(self->honest_wait);
    return 0;
}

static void
GCRA_dealloc(GCRAObject *self)
{
    PyObject_GC_UnTrack(self);
    GCRA_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject GCRAType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "resilient._speedups.GCRA",
    .tp_basicsize = sizeof(GCRAObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "One token bucket's decisions over a MemoryStore (see resilient.stores._memory).",
    .tp_new = GCRA_new,
    .tp_traverse = (traverseproc)GCRA_traverse,
    .tp_clear = (inquiry)GCRA_clear,
    .tp_dealloc = (destructor)GCRA_dealloc,
    .tp_methods = GCRA_methods,
    .tp_getset = GCRA_getset,
};

/* -- histograms: durations waiting to be counted into buckets ----------------------------- */

/* `Durations` is what a histogram's sink hands out as its `nanos` (see CallSink.nanos in
 * resilient/_events.py) when this module is built: the durations of successful calls, in
 * integer nanoseconds, appended by the policies that time calls inline and taken out by the
 * sink's fold. In Python it is a list of ints; here a C array, so `RetryCall` stores a duration
 * without making an int object, and the fold counts the batch into the buckets in one pass
 * instead of a sort: together about a third of what timing a call costs. Every method runs
 * without Python code in the middle, so under the GIL appends and drains are atomic. */

typedef struct {
    PyObject_HEAD
    long long *items;
    Py_ssize_t size;
    Py_ssize_t capacity;
} DurationsObject;

/* Inlined where a call is timed: most pushes are one store. */
static inline int
durations_push(DurationsObject *self, long long value)
{
    if (self->size == self->capacity) {
        Py_ssize_t capacity = self->capacity < 64 ? 64 : self->capacity * 2;
        long long *items = PyMem_Realloc(self->items, (size_t)capacity * sizeof(long long));
        if (items == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        self->items = items;
        self->capacity = capacity;
    }
    self->items[self->size++] = value;
    return 0;
}

static PyObject *
Durations_append(DurationsObject *self, PyObject *value)
{
    long long nanoseconds = PyLong_AsLongLong(value); /* TypeError, OverflowError */
    if (nanoseconds == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (durations_push(self, nanoseconds) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
Durations_extend(DurationsObject *self, PyObject *values)
{
    PyObject *iterator = PyObject_GetIter(values);
    if (iterator == NULL) {
        return NULL;
    }
    PyObject *value;
    while ((value = PyIter_Next(iterator)) != NULL) {
        PyObject *done = Durations_append(self, value);
        Py_DECREF(value);
        if (done == NULL) {
            Py_DECREF(iterator);
            return NULL;
        }
        Py_DECREF(done);
    }
    Py_DECREF(iterator);
    if (PyErr_Occurred()) {
        return NULL;
    }
    Py_RETURN_NONE;
}

#define MAX_BOUNDS 256

/* drain(bounds) -> (counts, n, total): takes every duration out; counts[i] is how many are at
 * most bounds[i] (ints, increasing), n how many there were, total their sum (an int). */
static PyObject *
Durations_drain(DurationsObject *self, PyObject *bound_items)
{
    if (!PyTuple_Check(bound_items)) {
        PyErr_SetString(PyExc_TypeError, "drain() takes a tuple of ints");
        return NULL;
    }
    Py_ssize_t k = PyTuple_GET_SIZE(bound_items);
    if (k > MAX_BOUNDS) {
        PyErr_SetString(PyExc_ValueError, "too many bounds");
        return NULL;
    }
    long long bounds[MAX_BOUNDS];
    for (Py_ssize_t i = 0; i < k; i++) {
        int overflow = 0;
        bounds[i] = PyLong_AsLongLongAndOverflow(PyTuple_GET_ITEM(bound_items, i), &overflow);
        if (bounds[i] == -1 && PyErr_Occurred()) {
            return NULL;
        }
        if (overflow > 0) {
            bounds[i] = LLONG_MAX; /* above every duration, as the bound itself is */
        }
        if (overflow < 0 || (i > 0 && bounds[i] < bounds[i - 1])) {
            PyErr_SetString(PyExc_ValueError, "bounds must be increasing and above -2**63");
            return NULL;
        }
    }
    /* Taken out first: nothing below runs Python code, and a failure loses the batch only
     * after a MemoryError. */
    long long *items = self->items;
    Py_ssize_t n = self->size;
    self->items = NULL;
    self->size = self->capacity = 0;
    Py_ssize_t hits[MAX_BOUNDS + 1] = {0};
    long long total = 0;
    int overflowed = 0;
    for (Py_ssize_t j = 0; j < n; j++) {
        long long value = items[j];
        overflowed |= __builtin_add_overflow(total, value, &total);
        /* The first bound >= value: the duration counts for it and every later one. Most
         * calls fit the first bucket (5 ms by default): checked before the bisection. */
        Py_ssize_t low = 0, high = k > 0 && value <= bounds[0] ? 0 : k;
        while (low < high) {
            Py_ssize_t middle = (low + high) / 2;
            if (bounds[middle] < value) {
                low = middle + 1;
            }
            else {
                high = middle;
            }
        }
        hits[low]++;
    }
    PyObject *sum = NULL, *counts = NULL, *result = NULL;
    if (!overflowed) {
        sum = PyLong_FromLongLong(total);
    }
    else { /* beyond 64 bits: added up as Python ints, exact */
        sum = PyLong_FromLong(0);
        for (Py_ssize_t j = 0; sum != NULL && j < n; j++) {
            PyObject *item = PyLong_FromLongLong(items[j]);
            if (item == NULL) {
                Py_CLEAR(sum);
                break;
            }
            Py_SETREF(sum, PyNumber_Add(sum, item));
            Py_DECREF(item);
        }
    }
    PyMem_Free(items);
    if (sum == NULL) {
        return NULL;
    }
    counts = PyList_New(k);
    if (counts == NULL) {
        Py_DECREF(sum);
        return NULL;
    }
    Py_ssize_t running = 0;
    for (Py_ssize_t i = 0; i < k; i++) {
        running += hits[i];
        PyObject *count = PyLong_FromSsize_t(running);
        if (count == NULL) {
            Py_DECREF(counts);
            Py_DECREF(sum);
            return NULL;
        }
        PyList_SET_ITEM(counts, i, count);
    }
    result = Py_BuildValue("(NnN)", counts, n, sum);
    return result;
}

static Py_ssize_t
Durations_length(DurationsObject *self)
{
    return self->size;
}

static PyObject *
Durations_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    if (PyTuple_GET_SIZE(args) != 0 || (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0)) {
        PyErr_SetString(PyExc_TypeError, "Durations() takes no arguments");
        return NULL;
    }
    return type->tp_alloc(type, 0); /* zeroed: no items */
}

static void
Durations_dealloc(DurationsObject *self)
{
    PyMem_Free(self->items);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
Durations_repr(DurationsObject *self)
{
    return PyUnicode_FromFormat("<Durations: %zd pending>", self->size);
}

static PyMethodDef Durations_methods[] = {
    {"append", (PyCFunction)Durations_append, METH_O, "Add one duration (int nanoseconds)."},
    {"extend", (PyCFunction)Durations_extend, METH_O, "Add each of an iterable of durations."},
    {"drain", (PyCFunction)Durations_drain, METH_O,
     "drain($self, bounds, /)\n--\n\n"
     "Take every duration out: (counts at most each bound, how many, their sum)."},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods Durations_sequence = {
    .sq_length = (lenfunc)Durations_length,
};

static PyTypeObject DurationsType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "resilient._speedups.Durations",
    .tp_basicsize = sizeof(DurationsObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Durations in nanoseconds waiting for a histogram's fold (see CallSink.nanos).",
    .tp_new = Durations_new,
    .tp_dealloc = (destructor)Durations_dealloc,
    .tp_repr = (reprfunc)Durations_repr,
    .tp_methods = Durations_methods,
    .tp_as_sequence = &Durations_sequence,
};

/* -- retry: the decorated function's success path --------------------------------------- */

/* `RetryCall` is what `Retry._wrap_sync` builds in pure Python for a retry with nothing to do
 * before or after an attempt (the `fast_wrapper` closure), step for step: the same reads of
 * the event hub, the same clock (CLOCK_MONOTONIC, which `time.monotonic_ns` reads on Linux),
 * and every failure handed, with the same arguments, to the same Python functions (the retry
 * loop, `counted`, `clocked`, `timed`), so retries, events and metrics do not depend on which
 * version runs. What C saves is the Python frame of the wrapper and, when durations are
 * taken, the two calls of `time.monotonic_ns`: about the cost of the whole success path. */

static PyObject *TIMING;   /* "timing" */
static PyObject *COUNTING; /* "counting" */
static PyObject *NANOS;    /* "nanos" */

enum { HUB_TIMING, HUB_COUNTING, HUB_NANOS, HUB_SLOTS };

/* Whether a dict's version tag (PEP 509) can tell that a dict did not change since a lookup:
 * CPython bumps it on every change, to a value no dict had before. Not after 3.13, which
 * deprecated the field. */
#if PY_VERSION_HEX < 0x030E0000
#define REMEMBER_LOOKUPS 1
#else
#define REMEMBER_LOOKUPS 0
#endif

/* The last answer of `HUB.counting.get(key)` (or of `nanos`): the dict asked, its version
 * then, the answer. Between two (un)subscribes those dicts only change when a policy is
 * first seen, so the answer stands, and hashing and comparing the key tuple again would cost
 * about as much as the rest of an instrumented call. Strong references: a dict alive cannot
 * be replaced by another at the same address. */
typedef struct {
    PyObject *mapping;
    unsigned long long version;
    PyObject *value;
} Remembered;

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *fn;      /* the decorated function */
    PyObject *slow;    /* policy._retry_sync(fn, args, kwargs, error, None, 0.0, name) */
    PyObject *run;     /* policy._run_sync, for `timed` */
    PyObject *policy;
    PyObject *name;
    PyObject *key;     /* (kind, name): the key of HUB.counting and HUB.nanos */
    PyObject *hub;
    PyObject *timed;   /* resilient._events.timed, counted, clocked, fold */
    PyObject *counted;
    PyObject *clocked;
    PyObject *fold;
    Py_ssize_t fold_at;
    int system;        /* the policy reads the system clock: durations may be taken here */
    /* Where the hub's slots `timing`, `counting` and `nanos` live in the hub object (its
     * class's __slots__), or -1 to read them as attributes. */
    Py_ssize_t offsets[HUB_SLOTS];
    Remembered counting;
    Remembered nanos;
    PyObject *dict;    /* __dict__: what functools.update_wrapper sets (__wrapped__...) */
    PyObject *weakrefs;
} RetryCallObject;

/* The hub's attribute `which` (a new reference). A slot is read in place: the same value as
 * `getattr(hub, name)`, without the attribute lookup, which would cost about as much as the
 * rest of the uninstrumented call. */
static inline PyObject *
hub_get(RetryCallObject *self, int which)
{
    Py_ssize_t offset = self->offsets[which];
    if (offset >= 0) {
        PyObject *value = *(PyObject **)((char *)self->hub + offset);
        if (value != NULL) {
            Py_INCREF(value);
            return value;
        }
    }
    PyObject *name = which == HUB_TIMING ? TIMING : which == HUB_COUNTING ? COUNTING : NANOS;
    return PyObject_GetAttr(self->hub, name);
}

#if REMEMBER_LOOKUPS
static unsigned long long
version_of(PyObject *dict)
{
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif
    return ((PyDictObject *)dict)->ma_version_tag;
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
}
#endif

/* `mapping.get(key)` (a new reference; None when missing), answered from `memo` when the
 * mapping is the dict asked last time and has not changed since. */
static inline PyObject *
lookup(Remembered *memo, PyObject *mapping, PyObject *key)
{
    if (!PyDict_CheckExact(mapping)) {
        return PyObject_CallMethod(mapping, "get", "O", key);
    }
#if REMEMBER_LOOKUPS
    unsigned long long version = version_of(mapping);
    if (memo->mapping == mapping && memo->version == version) {
        return Py_NewRef(memo->value);
    }
#endif
    PyObject *value = PyDict_GetItemWithError(mapping, key); /* borrowed */
    if (value == NULL) {
        if (PyErr_Occurred()) {
            return NULL;
        }
        value = Py_None;
    }
    Py_INCREF(value);
#if REMEMBER_LOOKUPS
    /* Unless the lookup itself saw the dict change (a key's __eq__ can run any code). The
     * new answer is in place before the old one is let go: freeing it can run code too. */
    if (version_of(mapping) == version) {
        PyObject *old_mapping = memo->mapping, *old_value = memo->value;
        memo->mapping = Py_NewRef(mapping);
        memo->version = version;
        memo->value = Py_NewRef(value);
        Py_XDECREF(old_mapping);
        Py_XDECREF(old_value);
    }
#endif
    return value;
}

/* The positional arguments as a tuple and the keyword arguments as a new dict: what the
 * Python wrapper's ``*args, **kwargs`` hold. */
static int
pack_arguments(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames, PyObject **tuple,
               PyObject **kwargs)
{
    *tuple = PyTuple_New(nargs);
    if (*tuple == NULL) {
        return -1;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) {
        Py_INCREF(args[i]);
        PyTuple_SET_ITEM(*tuple, i, args[i]);
    }
    *kwargs = PyDict_New();
    if (*kwargs == NULL) {
        Py_CLEAR(*tuple);
        return -1;
    }
    if (kwnames != NULL) {
        Py_ssize_t count = PyTuple_GET_SIZE(kwnames);
        for (Py_ssize_t i = 0; i < count; i++) {
            if (PyDict_SetItem(*kwargs, PyTuple_GET_ITEM(kwnames, i), args[nargs + i]) < 0) {
                Py_CLEAR(*tuple);
                Py_CLEAR(*kwargs);
                return -1;
            }
        }
    }
    return 0;
}

/* The pending exception, taken out of the thread state (a new reference; its traceback
 * attached, as `except BaseException as exc` would see it). */
static PyObject *
take_error(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyErr_NormalizeException(&type, &value, &traceback);
    if (traceback != NULL) {
        PyException_SetTraceback(value, traceback);
        Py_DECREF(traceback);
    }
    Py_DECREF(type);
    return value;
#endif
}

/* The first attempt raised (the error pending): ``handler(*prefix, fn, args, kwargs, error,
 * None, 0.0, name)``, where `handler` is the retry loop itself, `counted` or `clocked`. */
static PyObject *
hand_over(RetryCallObject *self, PyObject *handler, PyObject *first, PyObject *second,
          PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *error = take_error();
    PyObject *tuple, *kwargs;
    if (pack_arguments(args, nargs, kwnames, &tuple, &kwargs) < 0) {
        Py_DECREF(error);
        return NULL;
    }
    PyObject *call[10];
    int n = 0;
    if (first != NULL) {
        call[n++] = first;
    }
    if (second != NULL) {
        call[n++] = second;
    }
    if (handler != self->slow) {
        call[n++] = self->slow;
    }
    call[n++] = self->fn;
    call[n++] = tuple;
    call[n++] = kwargs;
    call[n++] = error;
    call[n++] = Py_None;
    call[n++] = ZERO_FLOAT;
    call[n++] = self->name;
    PyObject *result = PyObject_Vectorcall(handler, call, n, NULL);
    Py_DECREF(tuple);
    Py_DECREF(kwargs);
    Py_DECREF(error);
    return result;
}

/* ``timed(policy, name, run, (fn, args, kwargs, name), {})``: the whole call through the
 * Python version, while the hub has no inline way for this key. */
static PyObject *
through_timed(RetryCallObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *tuple, *kwargs;
    if (pack_arguments(args, nargs, kwnames, &tuple, &kwargs) < 0) {
        return NULL;
    }
    PyObject *packed = PyTuple_Pack(4, self->fn, tuple, kwargs, self->name);
    Py_DECREF(tuple);
    Py_DECREF(kwargs);
    if (packed == NULL) {
        return NULL;
    }
    PyObject *empty = PyDict_New();
    if (empty == NULL) {
        Py_DECREF(packed);
        return NULL;
    }
    PyObject *call[5] = {self->policy, self->name, self->run, packed, empty};
    PyObject *result = PyObject_Vectorcall(self->timed, call, 5, NULL);
    Py_DECREF(packed);
    Py_DECREF(empty);
    return result;
}

static inline int
monotonic_ns(long long *now)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    *now = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
    return 0;
}

/* `nanos.append(duration)` for a list (or any object with append), and its new length. */
static int
append_object(PyObject *nanos, long long nanoseconds, Py_ssize_t *length)
{
    PyObject *duration = PyLong_FromLongLong(nanoseconds);
    if (duration == NULL) {
        return -1;
    }
    if (PyList_CheckExact(nanos)) {
        /* Appending is one step under the GIL: no duration is lost between threads. */
        int failed = PyList_Append(nanos, duration);
        Py_DECREF(duration);
        if (failed < 0) {
            return -1;
        }
        *length = PyList_GET_SIZE(nanos);
        return 0;
    }
    PyObject *done = PyObject_CallMethod(nanos, "append", "O", duration);
    Py_DECREF(duration);
    if (done == NULL) {
        return -1;
    }
    Py_DECREF(done);
    *length = PyObject_Length(nanos);
    return *length < 0 ? -1 : 0;
}

/* One successful call timed here: its duration appended to `nanos`, folded at `fold_at`. */
static PyObject *
timed_inline(RetryCallObject *self, PyObject *nanos, PyObject *const *args, size_t nargsf,
             PyObject *kwnames)
{
    long long start, end;
    if (monotonic_ns(&start) < 0) {
        return NULL;
    }
    PyObject *result = PyObject_Vectorcall(self->fn, args, nargsf, kwnames);
    if (result == NULL) {
        PyObject *begun = PyLong_FromLongLong(start);
        if (begun == NULL) {
            return NULL; /* the call's error is lost in a MemoryError, as in Python */
        }
        result = hand_over(self, self->clocked, self->key, begun, args,
                           PyVectorcall_NARGS(nargsf), kwnames);
        Py_DECREF(begun);
        return result;
    }
    if (monotonic_ns(&end) < 0) {
        Py_DECREF(result);
        return NULL;
    }
    Py_ssize_t length;
    if (Py_IS_TYPE(nanos, &DurationsType)) {
        /* The sink's own buffer (see Durations): no int object made. */
        if (durations_push((DurationsObject *)nanos, end - start) < 0) {
            Py_DECREF(result);
            return NULL;
        }
        length = ((DurationsObject *)nanos)->size;
    }
    else if (append_object(nanos, end - start, &length) < 0) {
        Py_DECREF(result);
        return NULL;
    }
    if (length >= self->fold_at) {
        PyObject *done = PyObject_CallOneArg(self->fold, self->key);
        if (done == NULL) {
            Py_DECREF(result);
            return NULL;
        }
        Py_DECREF(done);
    }
    return result;
}

static PyObject *
RetryCall_vectorcall(RetryCallObject *self, PyObject *const *args, size_t nargsf,
                     PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *flag = hub_get(self, HUB_TIMING);
    if (flag == NULL) {
        return NULL;
    }
    int timing = flag == Py_True ? 1 : flag == Py_False ? 0 : PyObject_IsTrue(flag);
    Py_DECREF(flag);
    if (timing < 0) {
        return NULL;
    }
    if (!timing) {
        PyObject *result = PyObject_Vectorcall(self->fn, args, nargsf, kwnames);
        if (result != NULL) {
            return result;
        }
        return hand_over(self, self->slow, NULL, NULL, args, nargs, kwnames);
    }
    PyObject *counting = hub_get(self, HUB_COUNTING);
    if (counting == NULL) {
        return NULL;
    }
    PyObject *success = lookup(&self->counting, counting, self->key);
    Py_DECREF(counting);
    if (success == NULL) {
        return NULL;
    }
    if (success != Py_None) {
        /* Counted without a duration. */
        PyObject *result = PyObject_Vectorcall(self->fn, args, nargsf, kwnames);
        if (result == NULL) {
            Py_DECREF(success);
            return hand_over(self, self->counted, self->key, NULL, args, nargs, kwnames);
        }
        PyObject *done = PyObject_CallNoArgs(success);
        Py_DECREF(success);
        if (done == NULL) {
            Py_DECREF(result);
            return NULL;
        }
        Py_DECREF(done);
        return result;
    }
    Py_DECREF(success);
    PyObject *nanos = Py_None;
    Py_INCREF(nanos);
    if (self->system) {
        PyObject *table = hub_get(self, HUB_NANOS);
        if (table == NULL) {
            Py_DECREF(nanos);
            return NULL;
        }
        Py_SETREF(nanos, lookup(&self->nanos, table, self->key));
        Py_DECREF(table);
        if (nanos == NULL) {
            return NULL;
        }
    }
    if (nanos == Py_None) { /* not bound yet, or several sinks, or another clock */
        Py_DECREF(nanos);
        return through_timed(self, args, nargs, kwnames);
    }
    PyObject *result = timed_inline(self, nanos, args, nargsf, kwnames);
    Py_DECREF(nanos);
    return result;
}

/* Bound to an instance like a function: a method decorated with @retry stays a method. */
static PyObject *
RetryCall_get(PyObject *self, PyObject *instance, PyObject *owner)
{
    if (instance == NULL || instance == Py_None) {
        Py_INCREF(self);
        return self;
    }
    return PyMethod_New(self, instance);
}

/* The hub's slot `name` as an offset into the hub object, or -1: found only when the hub's
 * class defines it as a plain object slot (a `__slots__` entry), which reads the same in
 * place as through getattr. */
static Py_ssize_t
slot_offset(PyObject *hub, PyObject *name)
{
    PyObject *descriptor = PyObject_GetAttr((PyObject *)Py_TYPE(hub), name);
    if (descriptor == NULL) {
        PyErr_Clear();
        return -1;
    }
    Py_ssize_t offset = -1;
    if (Py_IS_TYPE(descriptor, &PyMemberDescr_Type)) {
        PyMemberDef *member = ((PyMemberDescrObject *)descriptor)->d_member;
        if (member->type == OBJECT_EX && member->offset > 0 &&
            PyObject_TypeCheck(hub, PyDescr_TYPE(descriptor))) {
            offset = member->offset;
        }
    }
    Py_DECREF(descriptor);
    return offset;
}

static PyObject *
RetryCall_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"fn",      "slow",   "run",     "policy",  "name",
                            "key",     "hub",    "system",  "timed",   "counted",
                            "clocked", "fold",   "fold_at", NULL};
    PyObject *fn, *slow, *run, *policy, *name, *key, *hub, *timed, *counted, *clocked, *fold;
    int system;
    Py_ssize_t fold_at;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "$OOOOOOOpOOOOn:RetryCall", names, &fn,
                                     &slow, &run, &policy, &name, &key, &hub, &system, &timed,
                                     &counted, &clocked, &fold, &fold_at)) {
        return NULL;
    }
    if (!PyCallable_Check(fn)) {
        PyErr_SetString(PyExc_TypeError, "fn must be callable");
        return NULL;
    }
    RetryCallObject *self = (RetryCallObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->vectorcall = (vectorcallfunc)RetryCall_vectorcall;
    self->fn = Py_NewRef(fn);
    self->slow = Py_NewRef(slow);
    self->run = Py_NewRef(run);
    self->policy = Py_NewRef(policy);
    self->name = Py_NewRef(name);
    self->key = Py_NewRef(key);
    self->hub = Py_NewRef(hub);
    self->timed = Py_NewRef(timed);
    self->counted = Py_NewRef(counted);
    self->clocked = Py_NewRef(clocked);
    self->fold = Py_NewRef(fold);
    self->fold_at = fold_at;
    self->system = system;
    self->offsets[HUB_TIMING] = slot_offset(hub, TIMING);
    self->offsets[HUB_COUNTING] = slot_offset(hub, COUNTING);
    self->offsets[HUB_NANOS] = slot_offset(hub, NANOS);
    return (PyObject *)self;
}

static int
RetryCall_traverse(RetryCallObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->fn);
    Py_VISIT(self->slow);
    Py_VISIT(self->run);
    Py_VISIT(self->policy);
    Py_VISIT(self->name);
    Py_VISIT(self->key);
    Py_VISIT(self->hub);
    Py_VISIT(self->timed);
    Py_VISIT(self->counted);
    Py_VISIT(self->clocked);
    Py_VISIT(self->fold);
    Py_VISIT(self->dict);
    Py_VISIT(self->counting.mapping);
    Py_VISIT(self->counting.value);
    Py_VISIT(self->nanos.mapping);
    Py_VISIT(self->nanos.value);
    return 0;
}

static int
RetryCall_clear(RetryCallObject *self)
{
    Py_CLEAR(self->fn);
    Py_CLEAR(self->slow);
    Py_CLEAR(self->run);
    Py_CLEAR(self->policy);
    Py_CLEAR(self->name);
    Py_CLEAR(self->key);
    Py_CLEAR(self->hub);
    Py_CLEAR(self->timed);
    Py_CLEAR(self->counted);
    Py_CLEAR(self->clocked);
    Py_CLEAR(self->fold);
    Py_CLEAR(self->dict);
    Py_CLEAR(self->counting.mapping);
    Py_CLEAR(self->counting.value);
    Py_CLEAR(self->nanos.mapping);
    Py_CLEAR(self->nanos.value);
    return 0;
}

static void
RetryCall_dealloc(RetryCallObject *self)
{
    PyObject_GC_UnTrack(self);
    if (self->weakrefs != NULL) {
        PyObject_ClearWeakRefs((PyObject *)self);
    }
    RetryCall_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
RetryCall_repr(RetryCallObject *self)
{
    /* "<retry <function f ...>>", or the kind of the policy that made it ("fallback"). */
    PyObject *kind = PyObject_GetAttrString(self->policy, "kind");
    if (kind == NULL) {
        return NULL;
    }
    PyObject *text = PyUnicode_FromFormat("<%S %R>", kind, self->fn);
    Py_DECREF(kind);
    return text;
}

/* Pickled by reference, as the function it replaces was (its module and qualified name, set
 * by functools.update_wrapper): a module-level decorated function can still be sent to another
 * process. copy.copy and copy.deepcopy return it unchanged, as they do a function. */
static PyObject *
RetryCall_reduce(PyObject *self, PyObject *unused)
{
    return PyObject_GetAttrString(self, "__qualname__");
}

static PyMethodDef RetryCall_methods[] = {
    {"__reduce__", RetryCall_reduce, METH_NOARGS, "Pickled by its qualified name."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef RetryCall_getset[] = {
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject RetryCallType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "resilient._speedups.RetryCall",
    .tp_basicsize = sizeof(RetryCallObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL |
                Py_TPFLAGS_METHOD_DESCRIPTOR,
    .tp_doc = "A function decorated with a retry (see resilient._retry.Retry._wrap_sync).",
    .tp_new = RetryCall_new,
    .tp_traverse = (traverseproc)RetryCall_traverse,
    .tp_clear = (inquiry)RetryCall_clear,
    .tp_dealloc = (destructor)RetryCall_dealloc,
    .tp_repr = (reprfunc)RetryCall_repr,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(RetryCallObject, vectorcall),
    .tp_descr_get = RetryCall_get,
    .tp_dictoffset = offsetof(RetryCallObject, dict),
    .tp_weaklistoffset = offsetof(RetryCallObject, weakrefs),
    .tp_getset = RetryCall_getset,
    .tp_methods = RetryCall_methods,
};

/* -- idempotency records ---------------------------------------------------------------- */

/* `Steps` is what `resilient.stores._memory_idempotency._MemoryIdempotency._steps` builds in
 * pure Python: the `claim` and `complete` of one binding (a store and a clock), over entries
 * `[expires_at, state, owner, fingerprint, result]` in the store's OrderedDict under
 * `(binding, key)`. Same steps, same order, same lock; the comments of the Python version say
 * why each step is there. Entries are changed only through the mapping protocol (an
 * OrderedDict keeps its order in a list of its own). */

#define PENDING 0
#define DONE_STATE 1
#define SWEEP_EVERY 4

typedef struct {
    PyObject_HEAD
    PyObject *binding;   /* the _MemoryIdempotency: the first item of its keys */
    PyObject *store;     /* for store.max_keys, read per insert as Python does */
    PyObject *data;      /* the store's OrderedDict */
    PyObject *acquire;   /* the store lock's bound acquire / release */
    PyObject *release;
    PyObject *popitem;   /* data.popitem */
    PyObject *monotonic; /* the clock's monotonic(), or None for the system clock */
    PyObject *claimed;   /* (CLAIMED, None), (REUSED, None): returned as they are */
    PyObject *reused;
    PyObject *done;        /* the int DONE and the int IN_PROGRESS of the status codes */
    PyObject *in_progress;
    PyObject *pending_state; /* the ints stored as an entry's state: 0 and 1 */
    PyObject *done_state;
    unsigned long long inserts;
} StepsObject;

/* An entry's field `index` as a 64-bit integer, or -1 with an error set. */
static int
entry_ticks(PyObject *entry, Py_ssize_t index, long long *out)
{
    if (!PyList_CheckExact(entry) || PyList_GET_SIZE(entry) != 5) {
        PyErr_SetString(PyExc_TypeError, "not an idempotency entry");
        return -1;
    }
    *out = PyLong_AsLongLong(PyList_GET_ITEM(entry, index));
    if (*out == -1 && PyErr_Occurred()) {
        return -1;
    }
    return 0;
}

/* Drop stale entries at the front (on one insert in SWEEP_EVERY), evict beyond max_keys, and
 * add `entry` under `composite`; the lock is held. As `claim` in _memory_idempotency.py. */
static int
steps_insert(StepsObject *self, PyObject *composite, PyObject *entry, long long now)
{
    PyObject *data = self->data;
    if (++self->inserts % SWEEP_EVERY == 0) {
        for (int i = 0; i < 2 * SWEEP_EVERY && PyDict_GET_SIZE(data) > 0; i++) {
            PyObject *iterator = PyObject_GetIter(data);
            if (iterator == NULL) {
                return -1;
            }
            PyObject *oldest = PyIter_Next(iterator);
            Py_DECREF(iterator);
            if (oldest == NULL) {
                if (PyErr_Occurred()) {
                    return -1;
                }
                break;
            }
            PyObject *oldest_entry = PyDict_GetItemWithError(data, oldest);
            long long expires, limit = now;
            if (oldest_entry == NULL || !PyTuple_Check(oldest) || PyTuple_GET_SIZE(oldest) < 1) {
                Py_DECREF(oldest);
                if (PyErr_Occurred()) {
                    return -1;
                }
                break;
            }
            Py_INCREF(oldest_entry);
            /* Other patterns' entries are lists too, their expiry first. */
            int failed = PyList_Check(oldest_entry) && PyList_GET_SIZE(oldest_entry) > 0
                             ? ((expires = PyLong_AsLongLong(PyList_GET_ITEM(oldest_entry, 0))) ==
                                    -1 &&
                                PyErr_Occurred())
                             : (PyErr_SetString(PyExc_TypeError, "not a store entry"), 1);
            Py_DECREF(oldest_entry);
            if (failed) {
                Py_DECREF(oldest);
                return -1;
            }
            PyObject *owner_binding = PyTuple_GET_ITEM(oldest, 0);
            if (owner_binding != self->binding) {
                PyObject *reading = PyObject_CallMethodNoArgs(owner_binding, NOW);
                if (reading == NULL) {
                    Py_DECREF(oldest);
                    return -1;
                }
                limit = PyLong_AsLongLong(reading);
                Py_DECREF(reading);
                if (limit == -1 && PyErr_Occurred()) {
                    Py_DECREF(oldest);
                    return -1;
                }
            }
            if (expires > limit) {
                Py_DECREF(oldest);
                break;
            }
            int deleted = PyObject_DelItem(data, oldest);
            Py_DECREF(oldest);
            if (deleted < 0) {
                return -1;
            }
        }
    }
    PyObject *max_keys = PyObject_GetAttr(self->store, MAX_KEYS);
    if (max_keys == NULL) {
        return -1;
    }
    Py_ssize_t limit_keys = PyLong_AsSsize_t(max_keys);
    Py_DECREF(max_keys);
    if (limit_keys == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (PyDict_GET_SIZE(data) >= limit_keys) {
        PyObject *evicted = PyObject_CallOneArg(self->popitem, Py_False);
        if (evicted == NULL) {
            return -1;
        }
        Py_DECREF(evicted);
    }
    return PyObject_SetItem(data, composite, entry);
}

/* The locked part of `claim`. Returns a new reference, or NULL with an error set. */
static PyObject *
steps_claim_locked(StepsObject *self, PyObject *composite, PyObject *owner, PyObject *fingerprint,
                   long long lease_ms, long long now)
{
    PyObject *data = self->data;
    PyObject *entry = PyDict_GetItemWithError(data, composite);
    if (entry == NULL && PyErr_Occurred()) {
        return NULL;
    }
    if (entry != NULL) {
        long long expires;
        if (entry_ticks(entry, 0, &expires) < 0) {
            return NULL;
        }
        if (expires > now) {
            Py_INCREF(entry);
            int same = PyObject_RichCompareBool(PyList_GET_ITEM(entry, 3), fingerprint, Py_EQ);
            PyObject *result = NULL;
            if (same == 0) {
                result = Py_NewRef(self->reused);
            }
            else if (same > 0) {
                long long state = PyLong_AsLongLong(PyList_GET_ITEM(entry, 1));
                if (state == DONE_STATE) {
                    PyObject *moved = PyObject_CallMethodOneArg(data, MOVE_TO_END, composite);
                    if (moved != NULL) {
                        Py_DECREF(moved);
                        result = PyTuple_Pack(2, self->done, PyList_GET_ITEM(entry, 4));
                    }
                }
                else if (!(state == -1 && PyErr_Occurred())) {
                    PyObject *left = PyFloat_FromDouble((double)(expires - now) / 1e6);
                    if (left != NULL) {
                        result = PyTuple_Pack(2, self->in_progress, left);
                        Py_DECREF(left);
                    }
                }
            }
            Py_DECREF(entry);
            return result;
        }
        if (PyObject_DelItem(data, composite) < 0) {
            return NULL;
        }
    }
    PyObject *expiry = PyLong_FromLongLong(now + lease_ms * 1000);
    if (expiry == NULL) {
        return NULL;
    }
    PyObject *fresh = PyList_New(5);
    if (fresh == NULL) {
        Py_DECREF(expiry);
        return NULL;
    }
    PyList_SET_ITEM(fresh, 0, expiry);
    PyList_SET_ITEM(fresh, 1, Py_NewRef(self->pending_state));
    PyList_SET_ITEM(fresh, 2, Py_NewRef(owner));
    PyList_SET_ITEM(fresh, 3, Py_NewRef(fingerprint));
    PyList_SET_ITEM(fresh, 4, Py_NewRef(Py_None));
    int inserted = steps_insert(self, composite, fresh, now);
    Py_DECREF(fresh);
    if (inserted < 0) {
        return NULL;
    }
    return Py_NewRef(self->claimed);
}

/* Release the store's lock whatever happened and return `result`, keeping an error raised
 * with the lock held (NULL result); a failing release is the error returned instead. */
static PyObject *
steps_unlock(StepsObject *self, PyObject *result)
{
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    int released = lock_call(self->release);
    if (type != NULL) {
        if (released < 0) {
            Py_XDECREF(type);
            Py_XDECREF(value);
            Py_XDECREF(traceback);
        }
        else {
            PyErr_Restore(type, value, traceback);
        }
    }
    if (released < 0) {
        Py_XDECREF(result);
        return NULL;
    }
    return result;
}

static int
steps_args(PyObject *const *args, Py_ssize_t nargs, const char *name, long long *ms)
{
    if (nargs != 4) {
        PyErr_Format(PyExc_TypeError, "%s() takes 4 arguments (%zd given)", name, nargs);
        return -1;
    }
    if (!PyLong_Check(args[3])) {
        PyErr_Format(PyExc_TypeError, "%s(): the duration must be an int of milliseconds", name);
        return -1;
    }
    *ms = PyLong_AsLongLong(args[3]);
    if (*ms == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (*ms < 0) {
        PyErr_Format(PyExc_ValueError, "%s(): the duration must be >= 0", name);
        return -1;
    }
    if (*ms > (1LL << 52)) {
        /* Over 140,000 years: held as that (a reading plus it in microseconds stays far
         * inside 64 bits), which no clock reaches; Python's ints would hold it exactly. */
        *ms = 1LL << 52;
    }
    return 0;
}

static PyObject *
Steps_claim(StepsObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    long long lease_ms, now;
    double reading;
    if (steps_args(args, nargs, "claim", &lease_ms) < 0) {
        return NULL;
    }
    PyObject *composite = PyTuple_Pack(2, self->binding, args[0]);
    if (composite == NULL) {
        return NULL;
    }
    PyObject *entry = PyDict_GetItemWithError(self->data, composite);
    if ((entry == NULL && PyErr_Occurred()) || read_now(self->monotonic, &now, &reading) < 0) {
        Py_DECREF(composite);
        return NULL;
    }
    if (entry != NULL && PyList_CheckExact(entry) && PyList_GET_SIZE(entry) == 5 &&
        PyList_GET_ITEM(entry, 1) == self->done_state) {
        /* A stored result, read without the lock (see the Python version). */
        long long expires;
        Py_INCREF(entry);
        if (entry_ticks(entry, 0, &expires) < 0) {
            Py_DECREF(entry);
            Py_DECREF(composite);
            return NULL;
        }
        if (expires > now) {
            int same = PyObject_RichCompareBool(PyList_GET_ITEM(entry, 3), args[2], Py_EQ);
            PyObject *result = same < 0   ? NULL
                               : same > 0 ? PyTuple_Pack(2, self->done, PyList_GET_ITEM(entry, 4))
                                          : Py_NewRef(self->reused);
            Py_DECREF(entry);
            Py_DECREF(composite);
            return result;
        }
        Py_DECREF(entry);
    }
    if (lock_call(self->acquire) < 0) {
        Py_DECREF(composite);
        return NULL;
    }
    PyObject *result = steps_claim_locked(self, composite, args[1], args[2], lease_ms, now);
    Py_DECREF(composite);
    return steps_unlock(self, result);
}

static PyObject *
Steps_complete(StepsObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    long long ttl_ms, now;
    double reading;
    if (steps_args(args, nargs, "complete", &ttl_ms) < 0) {
        return NULL;
    }
    PyObject *composite = PyTuple_Pack(2, self->binding, args[0]);
    if (composite == NULL) {
        return NULL;
    }
    if (lock_call(self->acquire) < 0) {
        Py_DECREF(composite);
        return NULL;
    }
    PyObject *result = NULL;
    PyObject *entry = NULL;
    if (read_now(self->monotonic, &now, &reading) < 0) {
        goto done;
    }
    entry = PyDict_GetItemWithError(self->data, composite);
    if (entry == NULL) {
        if (!PyErr_Occurred()) {
            result = Py_NewRef(Py_False);
        }
        goto done;
    }
    Py_INCREF(entry);
    long long expires;
    if (entry_ticks(entry, 0, &expires) < 0) {
        goto done;
    }
    if (PyList_GET_ITEM(entry, 1) != self->pending_state) {
        long long state = PyLong_AsLongLong(PyList_GET_ITEM(entry, 1));
        if (state == -1 && PyErr_Occurred()) {
            goto done;
        }
        if (state != PENDING) {
            result = Py_NewRef(Py_False);
            goto done;
        }
    }
    int other = PyObject_RichCompareBool(PyList_GET_ITEM(entry, 2), args[1], Py_NE);
    if (other < 0) {
        goto done;
    }
    if (other || expires <= now) {
        result = Py_NewRef(Py_False);
        goto done;
    }
    PyObject *expiry = PyLong_FromLongLong(now + ttl_ms * 1000);
    if (expiry == NULL) {
        goto done;
    }
    /* In this order: `claim` reads a DONE entry without the lock. */
    PyList_SetItem(entry, 4, Py_NewRef(args[2]));
    PyList_SetItem(entry, 0, expiry);
    PyList_SetItem(entry, 1, Py_NewRef(self->done_state));
    result = Py_NewRef(Py_True);
done:
    Py_XDECREF(entry);
    Py_DECREF(composite);
    return steps_unlock(self, result);
}

static PyMethodDef Steps_methods[] = {
    {"claim", (PyCFunction)(void (*)(void))Steps_claim, METH_FASTCALL,
     "claim(key, owner, fingerprint, lease_ms): claim key for owner with a lease, or report "
     "what holds it."},
    {"complete", (PyCFunction)(void (*)(void))Steps_complete, METH_FASTCALL,
     "complete(key, owner, result, ttl_ms): store result if owner still holds a live lease."},
    {NULL, NULL, 0, NULL},
};

static PyObject *
Steps_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"binding",  "store",   "lock",     "monotonic", "claimed",
                            "reused",   "done",    "in_progress", NULL};
    PyObject *binding, *store, *lock, *monotonic, *claimed, *reused, *done, *in_progress;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "$OOOOOOOO:Steps", names, &binding, &store,
                                     &lock, &monotonic, &claimed, &reused, &done,
                                     &in_progress)) {
        return NULL;
    }
    StepsObject *self = (StepsObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->binding = Py_NewRef(binding);
    self->store = Py_NewRef(store);
    self->monotonic = Py_NewRef(monotonic);
    self->claimed = Py_NewRef(claimed);
    self->reused = Py_NewRef(reused);
    self->done = Py_NewRef(done);
    self->in_progress = Py_NewRef(in_progress);
    self->inserts = 0;
    if ((self->data = PyObject_GetAttrString(store, "_data")) == NULL ||
        (self->acquire = PyObject_GetAttrString(lock, "acquire")) == NULL ||
        (self->release = PyObject_GetAttrString(lock, "release")) == NULL ||
        (self->popitem = PyObject_GetAttrString(self->data, "popitem")) == NULL ||
        (self->pending_state = PyLong_FromLong(PENDING)) == NULL ||
        (self->done_state = PyLong_FromLong(DONE_STATE)) == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    if (!PyDict_Check(self->data)) {
        PyErr_SetString(PyExc_TypeError, "store._data must be a dict");
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static int
Steps_traverse(StepsObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->binding);
    Py_VISIT(self->store);
    Py_VISIT(self->data);
    Py_VISIT(self->acquire);
    Py_VISIT(self->release);
    Py_VISIT(self->popitem);
    Py_VISIT(self->monotonic);
    Py_VISIT(self->claimed);
    Py_VISIT(self->reused);
    Py_VISIT(self->done);
    Py_VISIT(self->in_progress);
    return 0;
}

static int
Steps_clear(StepsObject *self)
{
    Py_CLEAR(self->binding);
    Py_CLEAR(self->store);
    Py_CLEAR(self->data);
    Py_CLEAR(self->acquire);
    Py_CLEAR(self->release);
    Py_CLEAR(self->popitem);
    Py_CLEAR(self->monotonic);
    Py_CLEAR(self->claimed);
    Py_CLEAR(self->reused);
    Py_CLEAR(self->done);
    Py_CLEAR(self->in_progress);
    Py_CLEAR(self->pending_state);
    Py_CLEAR(self->done_state);
    return 0;
}

static void
Steps_dealloc(StepsObject *self)
{
    PyObject_GC_UnTrack(self);
    Steps_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject StepsType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "resilient._speedups.Steps",
    .tp_basicsize = sizeof(StepsObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The claim and complete steps of idempotency records in a MemoryStore "
              "(see resilient.stores._memory_idempotency).",
    .tp_new = Steps_new,
    .tp_traverse = (traverseproc)Steps_traverse,
    .tp_clear = (inquiry)Steps_clear,
    .tp_dealloc = (destructor)Steps_dealloc,
    .tp_methods = Steps_methods,
};

/* `resilient._idempotency.held_as_they_are`: whether every value is an exact str or an exact
 * int of at most 64 bits, the strings EXACT_MAX (64) characters together at most. */
static PyObject *
held_as_they_are(PyObject *module, PyObject *values)
{
    if (!PyTuple_Check(values)) {
        PyErr_SetString(PyExc_TypeError, "values must be a tuple");
        return NULL;
    }
    Py_ssize_t room = 64;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(values); i++) {
        PyObject *value = PyTuple_GET_ITEM(values, i);
        if (PyUnicode_CheckExact(value)) {
            room -= PyUnicode_GET_LENGTH(value);
        }
        else if (PyLong_CheckExact(value)) {
            int overflow;
            long long number = PyLong_AsLongLongAndOverflow(value, &overflow);
            if (number == -1 && PyErr_Occurred()) {
                return NULL;
            }
            if (overflow) {
                Py_RETURN_FALSE;
            }
        }
        else {
            Py_RETURN_FALSE;
        }
        if (room < 0) {
            Py_RETURN_FALSE;
        }
    }
    Py_RETURN_TRUE;
}

/* -- sync timeouts ---------------------------------------------------------------------- */

/* `TimeoutHook` is `Timeout.__enter__` or `Timeout.__exit__` (resilient._timeout) for sync
 * ``with`` blocks: the same steps as the Python methods, which stay as the version used
 * without the extension. The common case runs here: the entry of a block with the system
 * clock and no deadline in scope yet is built in C, recorded in the frame index and in the
 * registry of open entries, and an exit run from the frame of its entry, the newest entry of
 * that frame, claims it and restores the enclosing deadline. Every other case calls the
 * Python code that the Python methods call (`Timeout._push` to build an entry,
 * `ScopeStack.pop` through `claim` to claim one, `_open_outer` for a closed enclosing
 * deadline), so the claim rules live in one place (resilient._scopes).
 *
 * Called straight from the ``with`` statement (the hook is a descriptor, bound like a
 * function), so the frame running it is the frame of the statement: the one
 * ``sys._getframe(1)`` gives in the Python ``__enter__`` / ``__exit__``. */

enum { SCOPE_AT, SCOPE_CLOCK, SCOPE_TIMEOUT, SCOPE_FIRED, SCOPE_SCOPE, SCOPE_HANDLE,
       SCOPE_OWNER, SCOPE_FRAME, SCOPE_OUTER, SCOPE_CLOSED, SCOPE_FIELDS };
static const char *scope_fields[SCOPE_FIELDS] = {"at",     "clock", "timeout", "fired",
                                                 "scope",  "handle", "owner", "frame",
                                                 "outer",  "closed"};

typedef struct {
    PyObject_HEAD
    int exit;               /* 0: __enter__, 1: __exit__ */
    PyObject *frames;       /* ScopeStack.frames: frame -> newest record made from it */
    PyObject *open_entries; /* ScopeStack.open_entries: id(record) -> record */
    PyObject *var;          /* the ContextVar of the deadline in scope */
    PyTypeObject *scope_type;   /* _Scope */
    PyTypeObject *timeout_type; /* Timeout */
    PyObject *system;       /* the system clock */
    PyObject *monotonic;    /* time.monotonic */
    PyObject *claim;        /* claim(owner, frame): ScopeStack.pop with this context's stack */
    PyObject *open_outer;   /* _open_outer(deadline) */
    Py_ssize_t slot[SCOPE_FIELDS]; /* offsets of _Scope's slots */
    Py_ssize_t clock_slot;  /* offsets of Timeout's slots _clock and seconds */
    Py_ssize_t seconds_slot;
    vectorcallfunc vectorcall;
} TimeoutHookObject;

static PyObject *PUSH; /* "_push" */

#define SLOT(obj, offset) (*(PyObject **)((char *)(obj) + (offset)))

/* The offset of ``type``'s plain object slot ``name`` (a `__slots__` entry), or -1 with an
 * error set. */
static Py_ssize_t
object_slot(PyTypeObject *type, const char *name)
{
    PyObject *descr = PyObject_GetAttrString((PyObject *)type, name);
    if (descr == NULL) {
        return -1;
    }
    Py_ssize_t offset = -1;
    if (Py_IS_TYPE(descr, &PyMemberDescr_Type)) {
        PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
        if (member->type == OBJECT_EX && !(member->flags & MEMBER_READONLY)) {
            offset = member->offset;
        }
    }
    Py_DECREF(descr);
    if (offset < 0) {
        PyErr_Format(PyExc_TypeError, "%s.%s is not a plain slot", type->tp_name, name);
    }
    return offset;
}

/* Store ``value`` in the slot at ``offset`` of ``obj``. */
static inline void
set_slot(PyObject *obj, Py_ssize_t offset, PyObject *value)
{
    Py_INCREF(value);
    Py_XSETREF(SLOT(obj, offset), value);
}

/* Record ``entry`` of ``owner`` made from ``frame`` (`ScopeStack.record`) and put it in
 * scope; a new reference to it, or NULL. */
static PyObject *
hook_record(TimeoutHookObject *self, PyObject *owner, PyObject *entry, PyObject *frame)
{
    PyObject *below = PyDict_GetItemWithError(self->frames, frame);
    if (below == NULL && PyErr_Occurred()) {
        return NULL;
    }
    below = Py_NewRef(below == NULL ? Py_None : below); /* held: allocating may run code */
    PyObject *record = PyList_New(6);
    if (record == NULL) {
        Py_DECREF(below);
        return NULL;
    }
    Py_INCREF(owner);
    PyList_SET_ITEM(record, 0, owner);
    Py_INCREF(entry);
    PyList_SET_ITEM(record, 1, entry);
    Py_INCREF(frame);
    PyList_SET_ITEM(record, 2, frame);
    PyList_SET_ITEM(record, 3, below);
    Py_INCREF(Py_None);
    PyList_SET_ITEM(record, 4, Py_None);
    Py_INCREF(Py_False);
    PyList_SET_ITEM(record, 5, Py_False);
    PyObject *key = PyLong_FromVoidPtr(record);
    if (key == NULL || PyDict_SetItem(self->frames, frame, record) < 0 ||
        PyDict_SetItem(self->open_entries, key, record) < 0) {
        Py_XDECREF(key);
        Py_DECREF(record);
        return NULL;
    }
    Py_DECREF(key);
    Py_DECREF(record);
    PyObject *token = PyContextVar_Set(self->var, entry);
    if (token == NULL) {
        return NULL;
    }
    Py_DECREF(token);
    Py_INCREF(entry);
    return entry;
}

static PyObject *
hook_enter(TimeoutHookObject *self, PyObject *owner)
{
    PyObject *frame = (PyObject *)PyEval_GetFrame(); /* borrowed */
    if (frame == NULL) {
        PyErr_SetString(PyExc_ValueError, "call stack is not deep enough");
        return NULL;
    }
    PyObject *outer;
    if (PyContextVar_Get(self->var, NULL, &outer) < 0) {
        return NULL;
    }
    PyObject *seconds = NULL;
    PyObject *clock = NULL;
    if (PyObject_TypeCheck(owner, self->timeout_type)) {
        seconds = SLOT(owner, self->seconds_slot);
        clock = SLOT(owner, self->clock_slot);
    }
    if (clock == self->system && seconds != NULL && PyFloat_CheckExact(seconds) &&
        PyFloat_AS_DOUBLE(seconds) > 0.0) {
        /* The steps of `Timeout._push` with the system clock, when the deadline in scope (if
         * any) is one of a timeout or a plain `Deadline` on the system clock. */
        PyObject *now_obj = PyObject_CallNoArgs(self->monotonic);
        if (now_obj == NULL) {
            Py_XDECREF(outer);
            return NULL;
        }
        double now = PyFloat_AsDouble(now_obj);
        Py_DECREF(now_obj);
        if (now == -1.0 && PyErr_Occurred()) {
            Py_XDECREF(outer);
            return NULL;
        }
        const Py_ssize_t *slot = self->slot;
        double left = PyFloat_AS_DOUBLE(seconds);
        PyObject *at_obj = NULL; /* borrowed from outer, or NULL: now + seconds */
        PyObject *entry_clock = clock;
        PyObject *entry_timeout = seconds;
        if (outer == NULL || outer == Py_None) {
            Py_CLEAR(outer);
        }
        else {
            PyObject *outer_at, *outer_clock, *outer_timeout;
            if (!(Py_IS_TYPE(outer, self->scope_type) ||
                  Py_IS_TYPE(outer, self->scope_type->tp_base)) ||
                (outer_at = SLOT(outer, slot[SCOPE_AT])) == NULL ||
                !PyFloat_CheckExact(outer_at) ||
                (outer_clock = SLOT(outer, slot[SCOPE_CLOCK])) != self->system ||
                (outer_timeout = SLOT(outer, slot[SCOPE_TIMEOUT])) == NULL) {
                goto push;
            }
            double outer_left = PyFloat_AS_DOUBLE(outer_at) - now;
            if (outer_left < left) {
                at_obj = outer_at;
                entry_clock = outer_clock;
                entry_timeout = outer_timeout;
                left = outer_left;
            }
        }
        if (!(left > 0.0)) {
            goto push; /* `_push` raises DeadlineExceeded (and reports it) */
        }
        if (at_obj == NULL) {
            at_obj = PyFloat_FromDouble(now + PyFloat_AS_DOUBLE(seconds));
            if (at_obj == NULL) {
                Py_XDECREF(outer);
                return NULL;
            }
        }
        else {
            Py_INCREF(at_obj);
        }
        /* held: allocating the entry may run code */
        Py_INCREF(entry_clock);
        Py_INCREF(entry_timeout);
        Py_INCREF(owner);
        PyTypeObject *type = self->scope_type;
        PyObject *entry = type->tp_alloc(type, 0);
        if (entry == NULL) {
            Py_DECREF(at_obj);
            Py_DECREF(entry_clock);
            Py_DECREF(entry_timeout);
            Py_DECREF(owner);
            Py_XDECREF(outer);
            return NULL;
        }
        SLOT(entry, slot[SCOPE_AT]) = at_obj;
        SLOT(entry, slot[SCOPE_CLOCK]) = entry_clock;
        SLOT(entry, slot[SCOPE_TIMEOUT]) = entry_timeout;
        set_slot(entry, slot[SCOPE_FIRED], Py_False);
        set_slot(entry, slot[SCOPE_SCOPE], Py_None);
        set_slot(entry, slot[SCOPE_HANDLE], Py_None);
        SLOT(entry, slot[SCOPE_OWNER]) = owner;
        set_slot(entry, slot[SCOPE_FRAME], Py_None);
        /* the reference to outer is the entry's */
        SLOT(entry, slot[SCOPE_OUTER]) = outer == NULL ? Py_NewRef(Py_None) : outer;
        set_slot(entry, slot[SCOPE_CLOSED], Py_False);
        PyObject *result = hook_record(self, owner, entry, frame);
        Py_DECREF(entry);
        return result;
    }
push:
    Py_XDECREF(outer);
    PyObject *pushed = PyObject_CallMethodOneArg(owner, PUSH, Py_None);
    if (pushed == NULL) {
        return NULL;
    }
    if (!PyTuple_Check(pushed) || PyTuple_GET_SIZE(pushed) != 2) {
        Py_DECREF(pushed);
        PyErr_SetString(PyExc_TypeError, "Timeout._push must return (entry, seconds left)");
        return NULL;
    }
    PyObject *result = hook_record(self, owner, PyTuple_GET_ITEM(pushed, 0), frame);
    Py_DECREF(pushed);
    return result;
}

static PyObject *
hook_exit(TimeoutHookObject *self, PyObject *owner)
{
    PyObject *frame = (PyObject *)PyEval_GetFrame(); /* borrowed */
    if (frame == NULL) {
        PyErr_SetString(PyExc_ValueError, "call stack is not deep enough");
        return NULL;
    }
    PyObject *entry = NULL;
    PyObject *record = PyDict_GetItemWithError(self->frames, frame); /* borrowed */
    if (record == NULL && PyErr_Occurred()) {
        return NULL;
    }
    if (record != NULL && PyList_CheckExact(record) && PyList_GET_SIZE(record) == 6 &&
        PyList_GET_ITEM(record, 0) == owner) {
        /* The first case of `ScopeStack.pop`: the newest entry of the frame is the owner's
         * and still open. */
        PyObject *key = PyLong_FromVoidPtr(record);
        if (key == NULL) {
            return NULL;
        }
        PyObject *open = PyDict_GetItemWithError(self->open_entries, key);
        if (open == NULL) {
            Py_DECREF(key);
            if (PyErr_Occurred()) {
                return NULL;
            }
        }
        else {
            Py_INCREF(record); /* the frame index and the registry held it */
            int failed = PyDict_DelItem(self->open_entries, key) < 0;
            Py_DECREF(key);
            PyObject *below = PyList_GET_ITEM(record, 3);
            entry = PyList_GET_ITEM(record, 1);
            Py_INCREF(entry);
            if (below == Py_None) {
                /* The common case: the frame's only entry. The record is referenced nowhere
                 * else now: no need to close it. */
                failed = failed || PyDict_DelItem(self->frames, frame) < 0;
            }
            else if (!failed) {
                /* `ScopeStack._unindex`, then the record is closed. */
                while (below != Py_None) {
                    int closed = PyObject_IsTrue(PyList_GET_ITEM(below, 5));
                    if (closed < 0) {
                        failed = 1;
                        break;
                    }
                    if (!closed) {
                        break;
                    }
                    below = PyList_GET_ITEM(below, 3);
                }
                if (!failed) {
                    failed = below == Py_None ? PyDict_DelItem(self->frames, frame) < 0
                                              : PyDict_SetItem(self->frames, frame, below) < 0;
                }
                PyList_SetItem(record, 2, Py_NewRef(Py_None));
                PyList_SetItem(record, 5, Py_NewRef(Py_True));
                PyList_SetItem(record, 0, Py_NewRef(Py_None));
                PyList_SetItem(record, 1, Py_NewRef(Py_None));
            }
            Py_DECREF(record);
            if (failed) {
                Py_DECREF(entry);
                return NULL;
            }
        }
    }
    if (entry == NULL) {
        entry = PyObject_CallFunctionObjArgs(self->claim, owner, frame, NULL);
        if (entry == NULL) {
            return NULL;
        }
    }
    /* `_leave(entry)`: close it; if it is the deadline in scope, the nearest enclosing open
     * one is. */
    PyObject *current;
    int is_scope = Py_IS_TYPE(entry, self->scope_type);
    if (is_scope) {
        set_slot(entry, self->slot[SCOPE_CLOSED], Py_True);
    }
    else if (PyObject_SetAttrString(entry, "closed", Py_True) < 0) {
        Py_DECREF(entry);
        return NULL;
    }
    if (PyContextVar_Get(self->var, NULL, &current) < 0) {
        Py_DECREF(entry);
        return NULL;
    }
    Py_XDECREF(current);
    if (current == entry) {
        PyObject *outer = is_scope ? SLOT(entry, self->slot[SCOPE_OUTER]) : NULL;
        if (outer != NULL && outer != Py_None &&
            !(Py_IS_TYPE(outer, self->scope_type) &&
              SLOT(outer, self->slot[SCOPE_CLOSED]) == Py_False)) {
            outer = NULL; /* closed, or not known to be open: `_open_outer` decides */
        }
        if (outer == NULL) {
            PyObject *entry_outer = PyObject_GetAttrString(entry, "outer");
            if (entry_outer == NULL) {
                Py_DECREF(entry);
                return NULL;
            }
            outer = PyObject_CallOneArg(self->open_outer, entry_outer);
            Py_DECREF(entry_outer);
        }
        else {
            Py_INCREF(outer);
        }
        if (outer == NULL) {
            Py_DECREF(entry);
            return NULL;
        }
        PyObject *token = PyContextVar_Set(self->var, outer);
        Py_DECREF(outer);
        if (token == NULL) {
            Py_DECREF(entry);
            return NULL;
        }
        Py_DECREF(token);
    }
    Py_DECREF(entry);
    Py_RETURN_NONE;
}

static PyObject *
TimeoutHook_vectorcall(TimeoutHookObject *self, PyObject *const *args, size_t nargsf,
                       PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) != 0) {
        PyErr_SetString(PyExc_TypeError, "takes no keyword arguments");
        return NULL;
    }
    if (self->exit) {
        if (nargs != 4) {
            PyErr_Format(PyExc_TypeError, "__exit__ takes 4 arguments (%zd given)", nargs);
            return NULL;
        }
        return hook_exit(self, args[0]);
    }
    if (nargs != 1) {
        PyErr_Format(PyExc_TypeError, "__enter__ takes 1 argument (%zd given)", nargs);
        return NULL;
    }
    return hook_enter(self, args[0]);
}

static PyObject *
TimeoutHook_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *names[] = {"exit",   "frames",   "open_entries", "var",  "scope_type",
                            "timeout_type", "system", "monotonic", "claim", "open_outer",
                            NULL};
    int exit;
    PyObject *frames, *open_entries, *var, *system, *monotonic, *claim, *open_outer;
    PyTypeObject *scope_type, *timeout_type;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "pO!O!O!O!O!OOOO:TimeoutHook", names, &exit,
                                     &PyDict_Type, &frames, &PyDict_Type, &open_entries,
                                     &PyContextVar_Type, &var, &PyType_Type, &scope_type,
                                     &PyType_Type, &timeout_type, &system, &monotonic, &claim,
                                     &open_outer)) {
        return NULL;
    }
    Py_ssize_t slot[SCOPE_FIELDS];
    for (int i = 0; i < SCOPE_FIELDS; i++) {
        slot[i] = object_slot(scope_type, scope_fields[i]);
        if (slot[i] < 0) {
            return NULL;
        }
    }
    Py_ssize_t clock_slot = object_slot(timeout_type, "_clock");
    Py_ssize_t seconds_slot = clock_slot < 0 ? -1 : object_slot(timeout_type, "seconds");
    if (seconds_slot < 0) {
        return NULL;
    }
    if (scope_type->tp_alloc == NULL || scope_type->tp_new != PyBaseObject_Type.tp_new) {
        PyErr_SetString(PyExc_TypeError, "scope_type must be made by object.__new__");
        return NULL;
    }
    TimeoutHookObject *self = (TimeoutHookObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->exit = exit;
    Py_INCREF(frames);
    self->frames = frames;
    Py_INCREF(open_entries);
    self->open_entries = open_entries;
    Py_INCREF(var);
    self->var = var;
    Py_INCREF(scope_type);
    self->scope_type = scope_type;
    Py_INCREF(timeout_type);
    self->timeout_type = timeout_type;
    Py_INCREF(system);
    self->system = system;
    Py_INCREF(monotonic);
    self->monotonic = monotonic;
    Py_INCREF(claim);
    self->claim = claim;
    Py_INCREF(open_outer);
    self->open_outer = open_outer;
    memcpy(self->slot, slot, sizeof(slot));
    self->clock_slot = clock_slot;
    self->seconds_slot = seconds_slot;
    self->vectorcall = (vectorcallfunc)TimeoutHook_vectorcall;
    return (PyObject *)self;
}

static int
TimeoutHook_traverse(TimeoutHookObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->frames);
    Py_VISIT(self->open_entries);
    Py_VISIT(self->var);
    Py_VISIT(self->scope_type);
    Py_VISIT(self->timeout_type);
    Py_VISIT(self->system);
    Py_VISIT(self->monotonic);
    Py_VISIT(self->claim);
    Py_VISIT(self->open_outer);
    return 0;
}

static int
TimeoutHook_clear(TimeoutHookObject *self)
{
    Py_CLEAR(self->frames);
    Py_CLEAR(self->open_entries);
    Py_CLEAR(self->var);
    Py_CLEAR(self->scope_type);
    Py_CLEAR(self->timeout_type);
    Py_CLEAR(self->system);
    Py_CLEAR(self->monotonic);
    Py_CLEAR(self->claim);
    Py_CLEAR(self->open_outer);
    return 0;
}

static void
TimeoutHook_dealloc(TimeoutHookObject *self)
{
    PyObject_GC_UnTrack(self);
    TimeoutHook_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject TimeoutHookType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "resilient._speedups.TimeoutHook",
    .tp_basicsize = sizeof(TimeoutHookObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL |
                Py_TPFLAGS_METHOD_DESCRIPTOR,
    .tp_doc = "Timeout.__enter__ or Timeout.__exit__ of sync with blocks (see "
              "resilient._timeout).",
    .tp_new = TimeoutHook_new,
    .tp_traverse = (traverseproc)TimeoutHook_traverse,
    .tp_clear = (inquiry)TimeoutHook_clear,
    .tp_dealloc = (destructor)TimeoutHook_dealloc,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(TimeoutHookObject, vectorcall),
    .tp_descr_get = RetryCall_get,
};

static PyMethodDef module_functions[] = {
    {"held_as_they_are", held_as_they_are, METH_O,
     "Whether an exact fingerprint holds these argument values as they are."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "resilient._speedups",
    .m_doc = "Optional C versions of resilient's hottest paths (the memory token bucket, "
             "idempotency records in memory, a retried call's success path, a histogram's "
             "pending durations).",
    .m_size = -1,
    .m_methods = module_functions,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    if (PyType_Ready(&GCRAType) < 0 || PyType_Ready(&RetryCallType) < 0 ||
        PyType_Ready(&DurationsType) < 0 || PyType_Ready(&StepsType) < 0 ||
        PyType_Ready(&TimeoutHookType) < 0) {
        return NULL;
    }
    ONE = PyLong_FromLong(1);
    EMPTY = PyUnicode_FromString("");
    ZERO_FLOAT = PyFloat_FromDouble(0.0);
    ACTIVE = PyUnicode_InternFromString("active");
    TIMING = PyUnicode_InternFromString("timing");
    COUNTING = PyUnicode_InternFromString("counting");
    NANOS = PyUnicode_InternFromString("nanos");
    MAX_KEYS = PyUnicode_InternFromString("max_keys");
    NOW = PyUnicode_InternFromString("now");
    MOVE_TO_END = PyUnicode_InternFromString("move_to_end");
    PUSH = PyUnicode_InternFromString("_push");
    if (ONE == NULL || EMPTY == NULL || ZERO_FLOAT == NULL || ACTIVE == NULL || TIMING == NULL ||
        COUNTING == NULL || NANOS == NULL || MAX_KEYS == NULL || NOW == NULL ||
        MOVE_TO_END == NULL || PUSH == NULL) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) {
        return NULL;
    }
    Py_INCREF(&GCRAType);
    if (PyModule_AddObject(m, "GCRA", (PyObject *)&GCRAType) < 0) {
        Py_DECREF(&GCRAType);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&DurationsType);
    if (PyModule_AddObject(m, "Durations", (PyObject *)&DurationsType) < 0) {
        Py_DECREF(&DurationsType);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&RetryCallType);
    if (PyModule_AddObject(m, "RetryCall", (PyObject *)&RetryCallType) < 0) {
        Py_DECREF(&RetryCallType);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&StepsType);
    if (PyModule_AddObject(m, "Steps", (PyObject *)&StepsType) < 0) {
        Py_DECREF(&StepsType);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&TimeoutHookType);
    if (PyModule_AddObject(m, "TimeoutHook", (PyObject *)&TimeoutHookType) < 0) {
        Py_DECREF(&TimeoutHookType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
