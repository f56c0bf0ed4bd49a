// Slot-swap schedule for truncated BPTT over variable-length sequences.
//
// B batch slots each hold one sequence. When a sequence ends, the next one of the
// epoch order takes its slot at the very next step (a "reset"). Windows of K steps
// are cut for truncated BPTT. Pure C++17, no Python headers.
#pragma once

#include <cstdint>
#include <vector>

namespace fastseq {

struct WindowShape {
  int64_t steps;  // rows filled in this window; 0 once the epoch is over
  int64_t width;  // slots in this window (== batch unless compacting while draining)
};

class SlotScheduler {
 public:
  // lengths[n_sequences] > 0; order[n_order] holds sequence ids in [0, n_sequences),
  // admitted in that order. compact: drop slots that can never be used again, so
  // the window narrows while the epoch drains. wrap: instead of idling, refill
  // slots cyclically from the start of the order until every sequence of the first
  // pass has finished (the original algorithm's behaviour).
  SlotScheduler(const int64_t* lengths, int64_t n_sequences, const int64_t* order,
                int64_t n_order, int64_t batch, int64_t bptt, bool compact, bool wrap);

  // Fills one window. Each of rows, seq, reset, valid, end must hold batch*bptt
  // entries and slot_map batch entries; they are written row-major [step][slot]
  // with a row stride equal to the returned width. rows/seq are -1 where idle.
  // slot_map[j] is the previous window's slot that slot j continues.
  WindowShape next(int64_t* rows, int64_t* seq, uint8_t* reset, uint8_t* valid,
                   uint8_t* end, int64_t* slot_map);

  bool done() const { return done_; }
  int64_t batch() const { return batch_; }
  int64_t bptt() const { return bptt_; }
  int64_t windows_emitted() const { return windows_; }

 private:
  bool admit(int64_t slot);  // give an empty slot the next sequence; false if none
  void compact_slots(int64_t* slot_map);

  std::vector<int64_t> lengths_;
  std::vector<int64_t> offsets_;
  std::vector<int64_t> order_;
  int64_t batch_;
  int64_t bptt_;
  bool compact_;
  bool wrap_;

  int64_t admitted_ = 0;         // admissions so far (beyond n_order when wrapping)
  int64_t finished_first_ = 0;   // sequences of the first pass that have finished
  int64_t width_;
  bool done_ = false;
  int64_t windows_ = 0;
  std::vector<int64_t> slot_seq_;     // sequence held by a slot, -1 if empty
  std::vector<int64_t> slot_pos_;     // next step of that sequence
  std::vector<uint8_t> slot_first_;   // held sequence belongs to the first pass
  std::vector<int64_t> scratch_;
};

}  // namespace fastseq
