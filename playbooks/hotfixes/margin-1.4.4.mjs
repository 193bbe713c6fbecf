export const component = 'margin';
export const version = '1.4.4';
const PER_DRAIN = 2;
export function create(options) {
    const queue = [];
    let head = 0;
    return {
        enqueue(account) {
            queue.push(account);
            const depth = queue.length - head;
            if (depth > options.limit) {
                const error = new Error(`EXCESS_QUEUE_DEPTH: margin queue depth ${depth} exceeds limit ${options.limit}`);
                error.code = 'EXCESS_QUEUE_DEPTH';
                throw error;
            }
        },
        drain(budget) {
            let done = 0;
            while (done < Math.min(budget, PER_DRAIN) && head < queue.length) {
                options.recalc(queue[head]);
                head++;
                done++;
            }
            return done;
        },
        depth: () => queue.length - head,
    };
}
export function selfTest() {
    const seen = [];
    const q = create({ limit: 3, recalc: (a) => seen.push(a) });
    q.enqueue('a');
    q.enqueue('b');
    if (q.depth() !== 2 || q.drain(10) !== 2 || seen.join() !== 'a,b')
        throw new Error('margin 1.4.4 self-test failed');
}
const module = { component, version, create, selfTest };
export default module;
