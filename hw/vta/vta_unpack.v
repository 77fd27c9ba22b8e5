// vta_unpack: turns memory-port beats into buffer elements.
//
// A DMA row is i_row_elems consecutive elements of ELEM_BYTES bytes, delivered as beats of
// PORT_BYTES bytes (beat k of a row holds the row's bytes k*PORT_BYTES onwards, least
// significant byte first). Both sizes are powers of two:
//   PORT_BYTES >= ELEM_BYTES: a beat carries PORT_BYTES/ELEM_BYTES elements; the unused tail
//                             of a row's last beat is dropped;
//   PORT_BYTES <  ELEM_BYTES: ELEM_BYTES/PORT_BYTES beats make one element.
// One element leaves per cycle at most; i_clear forgets any partial state between
// instructions.
`default_nettype none

module vta_unpack #(
    parameter integer PORT_BYTES = 16,
    parameter integer ELEM_BYTES = 16
) (
    input  wire                    clk,
    input  wire                    rst,
    input  wire                    i_clear,
    input  wire [15:0]             i_row_elems,
    input  wire                    i_beat_valid,
    output wire                    o_beat_ready,
    input  wire [PORT_BYTES*8-1:0] i_beat,
    output wire                    o_elem_valid,
    input  wire                    i_elem_ready,
    output wire [ELEM_BYTES*8-1:0] o_elem
);
    localparam integer PW = PORT_BYTES * 8;
    localparam integer EW = ELEM_BYTES * 8;

    generate
        if (PORT_BYTES >= ELEM_BYTES) begin : g_split
            localparam integer K = PORT_BYTES / ELEM_BYTES;
            localparam integer SW = K > 1 ? $clog2(K) : 1;
            reg [PW-1:0] beat;
            reg          have;
            reg [SW-1:0] slot;
            reg [15:0]   in_row;              // elements of the current row already sent

            wire take      = have && i_elem_ready;
            wire row_end   = in_row + 16'd1 == i_row_elems;
            wire beat_end  = row_end || slot == K[SW-1:0] - 1'b1 || K == 1;
            wire accept    = i_beat_valid && (!have || (take && beat_end));

            always @(posedge clk) begin
                if (rst || i_clear) begin
                    have   <= 1'b0;
                    slot   <= {SW{1'b0}};
                    in_row <= 16'd0;
                end else begin
                    if (take) begin
                        in_row <= row_end ? 16'd0 : in_row + 16'd1;
                        slot   <= beat_end ? {SW{1'b0}} : slot + 1'b1;
                        if (beat_end) have <= 1'b0;
                    end
                    if (accept) begin
                        beat <= i_beat;
                        have <= 1'b1;
                    end
                end
            end

            assign o_beat_ready = !have || (take && beat_end);
            assign o_elem_valid = have;
            if (K > 1) begin : g_select
                assign o_elem = beat[slot * EW +: EW];
            end else begin : g_whole
                assign o_elem = beat[EW-1:0];
            end
        end else begin : g_join
            localparam integer R = ELEM_BYTES / PORT_BYTES;
            localparam integer RW = R > 1 ? $clog2(R) : 1;
            reg [EW-1:0] elem;
            reg          full;
            reg [RW-1:0] part;

            wire take   = full && i_elem_ready;
            wire accept = i_beat_valid && (!full || take);
            wire unused_row_elems = ^i_row_elems;   // rows are whole elements: nothing to drop

            always @(posedge clk) begin
                if (rst || i_clear) begin
                    full <= 1'b0;
                    part <= {RW{1'b0}};
                end else begin
                    if (take) full <= 1'b0;
                    if (accept) begin
                        elem[part * PW +: PW] <= i_beat;
                        part <= part == R[RW-1:0] - 1'b1 ? {RW{1'b0}} : part + 1'b1;
                        if (part == R[RW-1:0] - 1'b1) full <= 1'b1;
                    end
                end
            end

            assign o_beat_ready = !full || take;
            assign o_elem_valid = full;
            assign o_elem = elem;
        end
    endgenerate
endmodule

`default_nettype wire
