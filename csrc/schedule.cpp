#include "schedule.hpp"

#include <stdexcept>
#include <string>

namespace fastseq {

SlotScheduler::SlotScheduler(const int64_t* lengths, int64_t n_sequences,
                             const int64_t* order, int64_t n_order, int64_t batch,
                             int64_t bptt, bool compact, bool wrap)
    : batch_(batch), bptt_(bptt), compact_(compact), wrap_(wrap), width_(batch) {
  if (n_sequences < 0 || n_order < 0) throw std::invalid_argument("negative sizes");
  if (batch < 1) throw std::invalid_argument("batch must be >= 1");
  if (bptt < 1) throw std::invalid_argument("bptt must be >= 1");
  lengths_.assign(lengths, lengths + n_sequences);
  offsets_.resize(n_sequences);
  int64_t total = 0;
  for (int64_t i = 0; i < n_sequences; ++i) {
    if (lengths_[i] < 1) {
      throw std::invalid_argument("sequence " + std::to_string(i) + " has length " +
                                  std::to_string(lengths_[i]) + ", expected >= 1");
    }
    offsets_[i] = total;
    total += lengths_[i];
  }
  order_.assign(order, order + n_order);
  for (int64_t i = 0; i < n_order; ++i) {
    if (order_[i] < 0 || order_[i] >= n_sequences) {
      throw std::out_of_range("order[" + std::to_string(i) + "] = " +
                              std::to_string(order_[i]) + " is not a sequence id");
    }
  }
  slot_seq_.assign(batch, -1);
  slot_pos_.assign(batch, 0);
  slot_first_.assign(batch, 0);
  scratch_.resize(batch);
  done_ = n_order == 0;
}

bool SlotScheduler::admit(int64_t slot) {
  const int64_t n = static_cast<int64_t>(order_.size());
  if (admitted_ >= n && !(wrap_ && finished_first_ < n)) return false;
  slot_seq_[slot] = order_[admitted_ % n];
  slot_pos_[slot] = 0;
  slot_first_[slot] = admitted_ < n;
  ++admitted_;
  return true;
}

void SlotScheduler::compact_slots(int64_t* slot_map) {
  // A slot is kept if it holds an unfinished sequence, or if it is one of the
  // first empty slots (in slot order) that the remaining queue will fill.
  const int64_t n = static_cast<int64_t>(order_.size());
  int64_t queue = (wrap_ && finished_first_ < n) ? batch_ : n - admitted_;
  int64_t kept = 0;
  for (int64_t j = 0; j < width_; ++j) {
    const bool busy = slot_seq_[j] >= 0 && slot_pos_[j] < lengths_[slot_seq_[j]];
    bool keep = busy;
    if (!busy && queue > 0) {
      keep = true;
      --queue;
    }
    if (keep) {
      slot_map[kept] = j;
      slot_seq_[kept] = slot_seq_[j];
      slot_pos_[kept] = slot_pos_[j];
      slot_first_[kept] = slot_first_[j];
      ++kept;
    }
  }
  width_ = kept;
}

WindowShape SlotScheduler::next(int64_t* rows, int64_t* seq, uint8_t* reset,
                                uint8_t* valid, uint8_t* end, int64_t* slot_map) {
  if (done_) return {0, 0};
  if (compact_) {
    compact_slots(slot_map);
  } else {
    for (int64_t j = 0; j < width_; ++j) slot_map[j] = j;
  }
  const int64_t w = width_;
  const int64_t n = static_cast<int64_t>(order_.size());
  int64_t k = 0;
  for (; k < bptt_; ++k) {
    int64_t busy = 0;
    const int64_t base = k * w;
    for (int64_t j = 0; j < w; ++j) {
      int64_t s = slot_seq_[j];
      uint8_t fresh = 0;
      if (s < 0 || slot_pos_[j] >= lengths_[s]) {
        if (admit(j)) {
          s = slot_seq_[j];
          fresh = 1;
        } else {
          slot_seq_[j] = s = -1;
        }
      }
      if (s < 0) {
        rows[base + j] = -1;
        seq[base + j] = -1;
        reset[base + j] = 0;
        valid[base + j] = 0;
        end[base + j] = 0;
        continue;
      }
      const int64_t pos = slot_pos_[j]++;
      const bool last = pos + 1 == lengths_[s];
      rows[base + j] = offsets_[s] + pos;
      seq[base + j] = s;
      reset[base + j] = fresh;
      valid[base + j] = 1;
      end[base + j] = last;
      if (last && slot_first_[j]) ++finished_first_;
      ++busy;
    }
    if (busy == 0) break;  // every slot idle: the epoch has drained
    if (wrap_ && finished_first_ == n) {
      ++k;
      done_ = true;
      break;
    }
  }
  if (!wrap_ && admitted_ >= n) {
    bool any_left = false;
    for (int64_t j = 0; j < w; ++j) {
      const int64_t s = slot_seq_[j];
      if (s >= 0 && slot_pos_[j] < lengths_[s]) any_left = true;
    }
    if (!any_left) done_ = true;
  }
  if (k == 0) {
    done_ = true;
    return {0, 0};
  }
  ++windows_;
  return {k, w};
}

}  // namespace fastseq
