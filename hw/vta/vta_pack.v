// vta_pack: turns output elements into memory-port beats with byte strobes (the inverse of
// vta_unpack). i_elem_last marks the last element of a DMA row: the row's final beat leaves
// then, with the strobes of the bytes it holds, so every row starts on a fresh beat.
//   PORT_BYTES >= ELEM_BYTES: PORT_BYTES/ELEM_BYTES elements per beat;
//   PORT_BYTES <  ELEM_BYTES: ELEM_BYTES/PORT_BYTES beats per element.
`default_nettype none

module vta_pack #(
    parameter integer PORT_BYTES = 16,
    parameter integer ELEM_BYTES = 16
) (
    input  wire                    clk,
    input  wire                    rst,
    input  wire                    i_elem_valid,
    output wire                    o_elem_ready,
    input  wire [ELEM_BYTES*8-1:0] i_elem,
    input  wire                    i_elem_last,
    output wire                    o_beat_valid,
    input  wire                    i_beat_ready,
    output wire [PORT_BYTES*8-1:0] o_beat,
    output wire [PORT_BYTES-1:0]   o_strb,
    output wire                    o_beat_last      // the beat ends a row
);
    localparam integer PW = PORT_BYTES * 8;
    localparam integer EW = ELEM_BYTES * 8;

    generate
        if (PORT_BYTES >= ELEM_BYTES) begin : g_gather
            localparam integer K = PORT_BYTES / ELEM_BYTES;
            localparam integer SW = K > 1 ? $clog2(K) : 1;
            reg [PW-1:0]         beat;
            reg [PORT_BYTES-1:0] strb;
            reg                  full, last;
            reg [SW-1:0]         slot;

            wire send   = full && i_beat_ready;
            wire accept = i_elem_valid && (!full || send);
            wire closes = i_elem_last || slot == K[SW-1:0] - 1'b1 || K == 1;

            always @(posedge clk) begin
                if (rst) begin
                    full <= 1'b0;
                    slot <= {SW{1'b0}};
                    strb <= {PORT_BYTES{1'b0}};
                end else begin
                    if (send) begin
                        full <= 1'b0;
                        strb <= {PORT_BYTES{1'b0}};
                    end
                    if (accept) begin
                        if (K > 1) begin
                            beat[slot * EW +: EW] <= i_elem;
                            // a new beat starts with only this element's strobes
                            strb <= ((send || slot == 0) ? {PORT_BYTES{1'b0}} : strb)
                                    | ({{(PORT_BYTES - ELEM_BYTES){1'b0}}, {ELEM_BYTES{1'b1}}}
                                       << (slot * ELEM_BYTES));
                        end else begin
                            beat[EW-1:0] <= i_elem;
                            strb <= {PORT_BYTES{1'b1}};
                        end
                        slot <= closes ? {SW{1'b0}} : slot + 1'b1;
                        last <= i_elem_last;
                        if (closes) full <= 1'b1;
                    end
                end
            end

            assign o_elem_ready = !full || send;
            assign o_beat_valid = full;
            assign o_beat       = beat;
            assign o_strb       = strb;
            assign o_beat_last  = last;
        end else begin : g_split
            localparam integer R = ELEM_BYTES / PORT_BYTES;
            localparam integer RW = R > 1 ? $clog2(R) : 1;
            reg [EW-1:0] elem;
            reg          full, last;
            reg [RW-1:0] part;

            wire send     = full && i_beat_ready;
            wire final_part = part == R[RW-1:0] - 1'b1;
            wire accept   = i_elem_valid && (!full || (send && final_part));

            always @(posedge clk) begin
                if (rst) begin
                    full <= 1'b0;
                    part <= {RW{1'b0}};
                end else begin
                    if (send) begin
                        part <= final_part ? {RW{1'b0}} : part + 1'b1;
                        if (final_part) full <= 1'b0;
                    end
                    if (accept) begin
                        elem <= i_elem;
                        last <= i_elem_last;
                        full <= 1'b1;
                    end
                end
            end

            assign o_elem_ready = !full || (send && final_part);
            assign o_beat_valid = full;
            assign o_beat       = elem[part * PW +: PW];
            assign o_strb       = {PORT_BYTES{1'b1}};
            assign o_beat_last  = last && final_part;
        end
    endgenerate
endmodule

`default_nettype wire
