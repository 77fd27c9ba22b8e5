// vta_dispatch: runs one module's instruction queue in order, obeying dependency tokens.
//
// Shared by the load, compute and store modules. The head instruction starts when every token
// queue it pops (pop_prev / pop_next, bits 3 and 4) holds a token: the tokens are taken, the
// instruction leaves the queue and o_start pulses for one cycle with it on i_head. It ends on
// the first later cycle at which the module's executor is not busy; then the tokens it pushes
// (push_prev / push_next, bits 5 and 6) are pushed and o_retired pulses. Instructions of one
// module therefore never overlap, and a token is pushed only after the work before it is done.
//
// Status (for the watchdog report and the stall counters): o_state is EMPTY (queue empty,
// nothing running), WAITING (the head waits for o_missing_prev / o_missing_next tokens) or
// RUNNING; o_index is the stream index of the head or running instruction.
`default_nettype none

module vta_dispatch (
    input  wire         clk,
    input  wire         rst,
    input  wire         i_empty,
    input  wire [127:0] i_head,
    input  wire [31:0]  i_head_index,
    input  wire         i_prev_token,     // the queue pop_prev pops holds a token
    input  wire         i_next_token,     // the queue pop_next pops holds a token
    input  wire         i_exec_busy,
    output wire         o_start,          // also: remove the head from the queue
    output wire         o_pop_prev,
    output wire         o_pop_next,
    output wire         o_push_prev,
    output wire         o_push_next,
    output wire         o_retired,
    output wire [1:0]   o_state,
    output wire [31:0]  o_index,
    output wire         o_missing_prev,
    output wire         o_missing_next
);
    localparam [1:0] EMPTY = 2'd0, WAITING = 2'd1, RUNNING = 2'd2;

    reg        running;
    reg        push_prev, push_next;
    reg [31:0] index;

    wire need_prev = i_head[3];
    wire need_next = i_head[4];
    assign o_missing_prev = !running && !i_empty && need_prev && !i_prev_token;
    assign o_missing_next = !running && !i_empty && need_next && !i_next_token;

    // running is set by o_start's clock edge, when the executor latches its work: from then on
    // i_exec_busy says whether that work is done.
    wire finishing = running && !i_exec_busy;
    assign o_start   = !running && !i_empty && !o_missing_prev && !o_missing_next;
    assign o_pop_prev  = o_start && need_prev;
    assign o_pop_next  = o_start && need_next;
    assign o_push_prev = finishing && push_prev;
    assign o_push_next = finishing && push_next;
    assign o_retired   = finishing;

    assign o_state = running ? RUNNING : i_empty ? EMPTY : WAITING;
    assign o_index = running ? index : i_head_index;

    wire unused_head = ^{i_head[127:7], i_head[2:0]};

    always @(posedge clk) begin
        if (rst) begin
            running <= 1'b0;
        end else if (o_start) begin
            running   <= 1'b1;
            push_prev <= i_head[5];
            push_next <= i_head[6];
            index     <= i_head_index;
        end else if (finishing) begin
            running <= 1'b0;
        end
    end
endmodule

`default_nettype wire
