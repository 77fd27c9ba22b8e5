// vta_fetch: reads the instruction stream from DRAM and routes each instruction, with its
// stream index, to the queue of the module that runs it (docs/vta-isa.md, "Modules"):
// STORE to store; LOAD of INP or WGT to load; LOAD of UOP or ACC, GEMM, ALU and FINISH to
// compute. Routing is in stream order and waits while the target queue is full.
//
//     DRAM --(CHUNK instructions per request)--> vta_unpack --> buffer (2*CHUNK) --> route
//
// A request is only made when the buffer has room for all of it, so fetch never holds the
// shared memory port while it waits for a full module queue.
`default_nettype none
`include "vta_config.vh"

module vta_fetch #(
    parameter integer PORT_BYTES = 16,
    parameter integer CHUNK = 16
) (
    input  wire                    clk,
    input  wire                    rst,
    input  wire                    i_start,
    input  wire [63:0]             i_insn_addr,
    input  wire [31:0]             i_insn_count,
    // memory client (read only)
    output wire                    o_req_valid,
    input  wire                    i_req_ready,
    output wire [63:0]             o_req_addr,
    output wire [31:0]             o_req_beats,
    input  wire                    i_rd_valid,
    output wire                    o_rd_ready,
    input  wire [PORT_BYTES*8-1:0] i_rd_data,
    // module queues: {index, instruction}
    output wire [159:0]            o_entry,
    output wire                    o_push_load,
    output wire                    o_push_compute,
    output wire                    o_push_store,
    input  wire                    i_full_load,
    input  wire                    i_full_compute,
    input  wire                    i_full_store,
    // status
    output wire [31:0]             o_routed,
    output wire                    o_blocked,       // the next instruction's queue is full
    output wire [1:0]              o_blocked_module // 0 load, 1 compute, 2 store
);
    localparam integer BUFFER = 2 * CHUNK;
    localparam integer BW = $clog2(BUFFER + 1);

    reg        active;
    reg [31:0] requested, routed, count;
    reg [63:0] addr;
    reg        outstanding;                 // a request whose instructions are still coming
    reg [15:0] chunk_size;
    reg [15:0] chunk_left;

    wire [BW-1:0] buffered;
    wire          empty;
    wire [127:0]  head;
    wire          unused_full;
    wire          elem_valid;
    wire [127:0]  elem;

    wire [31:0] remaining = count - requested;
    wire [15:0] next_chunk = remaining > CHUNK ? CHUNK[15:0] : remaining[15:0];
    assign o_req_valid = active && !outstanding && remaining != 0
                         && {{(32 - BW){1'b0}}, buffered} + {16'd0, next_chunk} <= BUFFER;
    assign o_req_addr  = addr;
    assign o_req_beats = ({16'd0, next_chunk} * 16 + PORT_BYTES - 1) / PORT_BYTES;
    wire requested_now = o_req_valid && i_req_ready;

    vta_unpack #(.PORT_BYTES(PORT_BYTES), .ELEM_BYTES(16)) unpack (
        .clk(clk), .rst(rst), .i_clear(i_start), .i_row_elems(chunk_size),
        .i_beat_valid(i_rd_valid), .o_beat_ready(o_rd_ready), .i_beat(i_rd_data),
        .o_elem_valid(elem_valid), .i_elem_ready(1'b1), .o_elem(elem));

    // -- routing -----------------------------------------------------------------------------
    wire [2:0] opcode   = head[`VTA_INSN_OPCODE];
    wire [2:0] mem_type = head[`VTA_MEM_MEMORY_TYPE];
    wire to_store = opcode == `VTA_OP_STORE;
    wire to_load  = opcode == `VTA_OP_LOAD && (mem_type == `VTA_MEM_INP || mem_type == `VTA_MEM_WGT);
    wire to_compute = !to_store && !to_load;
    wire target_full = to_store ? i_full_store : to_load ? i_full_load : i_full_compute;
    wire route = !empty && !target_full;

    vta_fifo #(.WIDTH(128), .DEPTH(BUFFER)) buffer (
        .clk(clk), .rst(rst || i_start), .i_push(elem_valid), .i_wdata(elem), .i_pop(route),
        .o_rdata(head), .o_empty(empty), .o_full(unused_full), .o_count(buffered));

    assign o_entry        = {routed, head};
    assign o_push_load    = route && to_load;
    assign o_push_compute = route && to_compute;
    assign o_push_store   = route && to_store;
    assign o_routed       = routed;
    assign o_blocked      = !empty && target_full;
    assign o_blocked_module = to_store ? 2'd2 : to_load ? 2'd0 : 2'd1;

    always @(posedge clk) begin
        if (rst) begin
            active      <= 1'b0;
            outstanding <= 1'b0;
            routed      <= 32'd0;
        end else if (i_start) begin
            active      <= 1'b1;
            addr        <= i_insn_addr;
            count       <= i_insn_count;
            requested   <= 32'd0;
            routed      <= 32'd0;
            outstanding <= 1'b0;
        end else begin
            if (requested_now) begin
                requested   <= requested + {16'd0, next_chunk};
                addr        <= addr + {48'd0, next_chunk} * 16;
                chunk_size  <= next_chunk;
                chunk_left  <= next_chunk;
                outstanding <= 1'b1;
            end else if (elem_valid) begin
                chunk_left <= chunk_left - 16'd1;
                if (chunk_left == 16'd1) outstanding <= 1'b0;
            end
            if (route) routed <= routed + 32'd1;
        end
    end
endmodule

`default_nettype wire
