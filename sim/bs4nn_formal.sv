// Formal properties of the generated top level `bs4nn` (bs4nn.sim.formal writes the job).
//
// The design under proof is the generated bs4nn.v itself; its internal potentials and the
// result queue's level are made ports by Yosys's `expose` before this wrapper is read. The
// case file (bs4nn_formal_case.svh, written per configuration) holds the parameters, the
// connections of those exposed signals and the range of each potential.
//
// Environment: reset in the first cycle only; every input stream keeps tvalid and its payload
// until tready (AXI4-Stream); the outputs' tready are free (safety) or held high (liveness).
`include "bs4nn_formal_case.svh"

module bs4nn_formal(input clk);
  (* anyseq *) wire rst;
  (* anyseq *) wire [PIXEL_W-1:0] s_tdata;
  (* anyseq *) wire s_tvalid, s_tlast, m_tready_free;
  wire s_tready, m_tvalid;
  wire [RESULT_W-1:0] m_tdata;
`ifdef LIVENESS
  wire m_tready = 1'b1;
`else
  wire m_tready = m_tready_free;
`endif
`ifdef DEBUG_EVENTS
  (* anyseq *) wire dbg_tready;
  wire dbg_tvalid;
  wire [DEBUG_W-1:0] dbg_tdata;
`endif
`ifdef WEIGHT_RAM
  (* anyseq *) wire [WEIGHT_W-1:0] w_tdata;
  (* anyseq *) wire w_tvalid_free, w_tlast;
  wire w_tready;
`ifdef LIVENESS
  wire w_tvalid = 1'b0;  // no weight frame: a frame left unfinished upstream holds the pixels
`else
  wire w_tvalid = w_tvalid_free;
`endif
`endif
  `BS4NN_EXPOSED_WIRES

  bs4nn dut(
    .clk(clk), .rst(rst),
    .s_axis_tdata(s_tdata), .s_axis_tvalid(s_tvalid), .s_axis_tready(s_tready),
    .s_axis_tlast(s_tlast),
    .m_axis_tdata(m_tdata), .m_axis_tvalid(m_tvalid), .m_axis_tready(m_tready),
`ifdef DEBUG_EVENTS
    .dbg_axis_tdata(dbg_tdata), .dbg_axis_tvalid(dbg_tvalid), .dbg_axis_tready(dbg_tready),
`endif
`ifdef WEIGHT_RAM
    .w_axis_tdata(w_tdata), .w_axis_tvalid(w_tvalid), .w_axis_tready(w_tready),
    .w_axis_tlast(w_tlast),
`endif
    `BS4NN_EXPOSED_PORTS
  );

  reg init = 1'b1;
  always @(posedge clk) init <= 1'b0;

  // Frames accepted and results delivered, and whether each frame in flight is malformed.
  wire s_fire = s_tvalid && s_tready && !rst;
  wire m_fire = m_tvalid && m_tready && !rst;
  reg [7:0] accepted = 8'd0, delivered = 8'd0;
  reg [7:0] beats = 8'd0;        // beats of the open frame, saturating
  reg expect_error [0:15];       // per frame in flight, whether its length is wrong
  always @(posedge clk) begin
    if (s_fire) begin
      beats <= s_tlast ? 8'd0 : (beats == 8'hff ? beats : beats + 8'd1);
      if (s_tlast) begin
        expect_error[accepted[3:0]] <= (beats != N_BEATS - 1);
        accepted <= accepted + 8'd1;
      end
    end
    if (m_fire) delivered <= delivered + 8'd1;
  end

  // ---- environment ------------------------------------------------------------------------
  always @(*) assume(rst == init);
  always @(posedge clk) if (!init && $past(s_tvalid && !s_tready))
    assume(s_tvalid && s_tdata == $past(s_tdata) && s_tlast == $past(s_tlast));
`ifdef WEIGHT_RAM
  always @(posedge clk) if (!init && $past(w_tvalid && !w_tready))
    assume(w_tvalid && w_tdata == $past(w_tdata) && w_tlast == $past(w_tlast));
`endif
`ifdef LIVENESS
`ifdef DEBUG_EVENTS
  always @(*) assume(dbg_tready);
`endif
`endif

`ifdef STREAM
  // ---- 1. the output streams keep tvalid and tdata until tready; nothing leaves in reset ----
  always @(posedge clk) if (!init && $past(m_tvalid && !m_tready))
    assert(m_tvalid && m_tdata == $past(m_tdata));
  always @(posedge clk) if (!init && $past(rst)) assert(!m_tvalid);
`ifdef DEBUG_EVENTS
  always @(posedge clk) if (!init && $past(dbg_tvalid && !dbg_tready))
    assert(dbg_tvalid && dbg_tdata == $past(dbg_tdata));
  always @(posedge clk) if (!init && $past(rst)) assert(!dbg_tvalid);
`endif
  // The result queue's invariants (what k-induction needs besides the rules above): its level
  // never exceeds its depth, and its write address is its read address plus its level.
  always @(*) if (!init) begin
    assert(result_queue_level <= CREDITS);
    assert(result_queue_w_addr == (result_queue_r_addr + result_queue_level) % CREDITS);
  end
`endif

`ifdef FRAMES

  // ---- 2. one result per frame, in order; error=1 exactly for a frame of the wrong length ---
  always @(*) if (!init) begin
    assert(delivered <= accepted);
    assert(accepted <= delivered + IN_FLIGHT);
  end
  always @(*) if (!init && m_fire) begin
    assert(m_tdata[ERROR_BIT] == expect_error[delivered[3:0]]);
    assert((m_tdata >> RESULT_BITS) == 0);
    // A malformed frame's result is error=1 and all other fields 0.
    if (m_tdata[ERROR_BIT]) assert(m_tdata == (1 << ERROR_BIT));
  end

`endif

  // ---- 3. no deadlock: bounded waits for a result and for s_axis_tready --------------------
`ifdef LIVENESS
  reg [15:0] waiting = 16'd0;    // cycles since the oldest frame in flight became the oldest
  reg [15:0] not_ready = 16'd0;  // cycles s_axis_tready has been low
  wire outstanding = accepted != delivered;
  always @(posedge clk) begin
    waiting <= (m_fire || !outstanding) ? 16'd0 : waiting + 16'd1;
    not_ready <= (s_tready || init) ? 16'd0 : not_ready + 16'd1;
  end
  always @(*) if (!init) begin
    assert(waiting < RESULT_BOUND);
    assert(not_ready < READY_BOUND);
  end
  always @(*) if (!init) cover(not_ready == 2);
`endif

  // ---- 4. no potential leaves its derived range (which lies inside its width) --------------
`ifdef RANGES
  always @(*) if (!init) begin
    `BS4NN_RANGE_ASSERTIONS
  end
`endif

  // ---- 5. every well-formed frame's result is the golden model's for its pixels -----------
`ifdef EQUIVALENCE
  // bs4nn_golden (bs4nn_golden.v, written per case) is the golden model's rule as logic.
  reg [N_BEATS*PIXEL_W-1:0] frame = 0;  // the open frame's beats
  reg [N_BEATS*PIXEL_W-1:0] image;      // with the beat being accepted as its last
  always @(*) begin
    image = frame;
    image[(N_BEATS-1)*PIXEL_W +: PIXEL_W] = s_tdata;
  end
  wire [RESULT_BITS-1:0] golden;
  bs4nn_golden golden_model(.pixels(image[8*N_INPUTS-1:0]), .result(golden));
  reg [RESULT_BITS-1:0] expect_result [0:15];
  always @(posedge clk) if (s_fire) begin
    if (beats < N_BEATS) frame[beats*PIXEL_W +: PIXEL_W] <= s_tdata;
    if (s_tlast) expect_result[accepted[3:0]] <= golden;
  end
  always @(*) if (!init && m_fire && !expect_error[delivered[3:0]])
    assert(m_tdata[RESULT_BITS-1:0] == expect_result[delivered[3:0]]);
`endif

  // ---- covers: the properties are not vacuous ------------------------------------------------
  always @(*) if (!init) begin
    cover(m_fire && m_tdata[ERROR_BIT]);
    cover(m_fire && !m_tdata[ERROR_BIT]);
`ifndef DEBUG_EVENTS
    // With the debug stream images do not overlap (the scheduler waits for its queue to
    // drain), so a full result queue takes about four whole images, past the cover depth.
    cover(result_queue_level == CREDITS);
`endif
  end
endmodule
