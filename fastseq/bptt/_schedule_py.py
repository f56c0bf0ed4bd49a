"""Plain-Python twin of csrc/schedule.cpp, written for clarity; tests compare the two.

It mirrors the native scheduler step by step: same admission order (slots in
ascending index), same compaction rule, same wrap-around rule.
"""
from __future__ import annotations

import numpy as np


class PySlotScheduler:
    """Reference slot-swap scheduler: one epoch, one window per `next_window` call."""

    def __init__(self, lengths, order, batch, bptt, compact=False, wrap=False):
        self.lengths = [int(x) for x in lengths]
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.int64)
        self.order = [int(x) for x in order]
        self.batch, self.bptt, self.compact, self.wrap = batch, bptt, compact, wrap
        self.admitted = 0
        self.finished_first = 0
        self.width = batch
        self.slots = [None] * batch  # [sequence, next position, first pass?] or None
        self.done = len(self.order) == 0

    def _queue_open(self):
        n = len(self.order)
        return self.admitted < n or (self.wrap and self.finished_first < n)

    def _admit(self, j):
        if not self._queue_open():
            return False
        n = len(self.order)
        self.slots[j] = [self.order[self.admitted % n], 0, self.admitted < n]
        self.admitted += 1
        return True

    def _busy(self, j):
        slot = self.slots[j]
        return slot is not None and slot[1] < self.lengths[slot[0]]

    def _compact(self):
        n = len(self.order)
        queue = self.batch if (self.wrap and self.finished_first < n) else n - self.admitted
        kept = []
        for j in range(self.width):
            if self._busy(j):
                kept.append(j)
            elif queue > 0:
                kept.append(j)
                queue -= 1
        self.slots = [self.slots[j] for j in kept] + [None] * (self.batch - len(kept))
        self.width = len(kept)
        return np.array(kept, dtype=np.int64)

    def next_window(self):
        if self.done:
            return None
        slot_map = self._compact() if self.compact else np.arange(self.width, dtype=np.int64)
        w, n = self.width, len(self.order)
        rows = np.full((self.bptt, w), -1, dtype=np.int64)
        seq = np.full((self.bptt, w), -1, dtype=np.int64)
        reset = np.zeros((self.bptt, w), dtype=bool)
        valid = np.zeros((self.bptt, w), dtype=bool)
        end = np.zeros((self.bptt, w), dtype=bool)
        steps = 0
        for k in range(self.bptt):
            busy = 0
            for j in range(w):
                fresh = False
                if not self._busy(j):
                    fresh = self._admit(j)
                    if not fresh:
                        self.slots[j] = None
                        continue
                s, pos, first = self.slots[j]
                self.slots[j][1] += 1
                last = pos + 1 == self.lengths[s]
                rows[k, j], seq[k, j] = self.offsets[s] + pos, s
                reset[k, j], valid[k, j], end[k, j] = fresh, True, last
                if last and first:
                    self.finished_first += 1
                busy += 1
            if busy == 0:
                break
            steps = k + 1
            if self.wrap and self.finished_first == n:
                self.done = True
                break
        if not self.wrap and self.admitted >= n and not any(self._busy(j) for j in range(w)):
            self.done = True
        if steps == 0:
            self.done = True
            return None
        return rows[:steps], seq[:steps], reset[:steps], valid[:steps], end[:steps], slot_map
