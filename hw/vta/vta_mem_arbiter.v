// vta_mem_arbiter: shares the one DRAM port among CLIENTS requesters (fetch, load, compute,
// store).
//
// Requests (byte address, beat count, read or write) are granted round-robin, one per cycle,
// and tagged with the client's number. The memory serves requests in order and tags each read
// beat (i_rd_id) and each write-data slot (i_wr_id) with the number of the request it belongs
// to; the arbiter steers read beats to that client and takes write beats from it. Per client,
// data therefore comes back in the order it asked.
`default_nettype none

module vta_mem_arbiter #(
    parameter integer CLIENTS = 4,
    parameter integer PORT_BYTES = 16
) (
    input  wire                            clk,
    input  wire                            rst,
    // clients, packed: client c uses bits [c*W +: W]
    input  wire [CLIENTS-1:0]              i_req_valid,
    output wire [CLIENTS-1:0]              o_req_ready,
    input  wire [CLIENTS-1:0]              i_req_write,
    input  wire [CLIENTS*64-1:0]           i_req_addr,
    input  wire [CLIENTS*32-1:0]           i_req_beats,
    output wire [CLIENTS-1:0]              o_rd_valid,
    input  wire [CLIENTS-1:0]              i_rd_ready,
    output wire [PORT_BYTES*8-1:0]         o_rd_data,
    input  wire [CLIENTS-1:0]              i_wr_valid,
    output wire [CLIENTS-1:0]              o_wr_ready,
    input  wire [CLIENTS*PORT_BYTES*8-1:0] i_wr_data,
    input  wire [CLIENTS*PORT_BYTES-1:0]   i_wr_strb,
    // the memory
    output wire                            o_mem_req_valid,
    input  wire                            i_mem_req_ready,
    output wire                            o_mem_req_write,
    output wire [63:0]                     o_mem_req_addr,
    output wire [31:0]                     o_mem_req_beats,
    output wire [IW-1:0]                   o_mem_req_id,
    input  wire                            i_mem_rd_valid,
    output wire                            o_mem_rd_ready,
    input  wire [PORT_BYTES*8-1:0]         i_mem_rd_data,
    input  wire [IW-1:0]                   i_mem_rd_id,
    input  wire                            i_mem_wr_ready,
    input  wire [IW-1:0]                   i_mem_wr_id,
    output wire                            o_mem_wr_valid,
    output wire [PORT_BYTES*8-1:0]         o_mem_wr_data,
    output wire [PORT_BYTES-1:0]           o_mem_wr_strb
);
    localparam integer IW = CLIENTS > 1 ? $clog2(CLIENTS) : 1;

    // round robin: the first requesting client at or after `next` (CLIENTS is a power of
    // two, so client numbers wrap in IW bits)
    reg [IW-1:0] next;
    reg [IW-1:0] grant;
    reg [IW-1:0] candidate;
    reg          any;
    integer step;
    always @* begin
        grant = next;
        any = 1'b0;
        for (step = CLIENTS - 1; step >= 0; step = step - 1) begin
            candidate = next + step[IW-1:0];
            if (i_req_valid[candidate]) begin
                grant = candidate;
                any = 1'b1;
            end
        end
    end

    always @(posedge clk) begin
        if (rst) next <= {IW{1'b0}};
        else if (any && i_mem_req_ready) next <= grant + 1'b1;
    end

    assign o_mem_req_valid = any;
    assign o_mem_req_write = i_req_write[grant];
    assign o_mem_req_addr  = i_req_addr[grant*64 +: 64];
    assign o_mem_req_beats = i_req_beats[grant*32 +: 32];
    assign o_mem_req_id    = grant;
    assign o_req_ready     = (any && i_mem_req_ready) ? ({{(CLIENTS - 1){1'b0}}, 1'b1} << grant)
                                                      : {CLIENTS{1'b0}};

    assign o_rd_valid     = i_mem_rd_valid ? ({{(CLIENTS - 1){1'b0}}, 1'b1} << i_mem_rd_id)
                                           : {CLIENTS{1'b0}};
    assign o_rd_data      = i_mem_rd_data;
    assign o_mem_rd_ready = i_rd_ready[i_mem_rd_id];

    assign o_wr_ready     = i_mem_wr_ready ? ({{(CLIENTS - 1){1'b0}}, 1'b1} << i_mem_wr_id)
                                           : {CLIENTS{1'b0}};
    assign o_mem_wr_valid = i_mem_wr_ready && i_wr_valid[i_mem_wr_id];
    assign o_mem_wr_data  = i_wr_data[i_mem_wr_id*PORT_BYTES*8 +: PORT_BYTES*8];
    assign o_mem_wr_strb  = i_wr_strb[i_mem_wr_id*PORT_BYTES +: PORT_BYTES];
endmodule

`default_nettype wire
