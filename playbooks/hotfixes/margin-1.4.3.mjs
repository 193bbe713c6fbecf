export const component = 'margin';
export const version = '1.4.3';
export function create(options) {
    // A Set keeps insertion order: accounts are recalculated oldest request first, each once.
    const pending = new Set();
    return {
        enqueue(account) {
            pending.add(account);
            if (pending.size > options.limit) {
                const error = new Error(`EXCESS_QUEUE_DEPTH: margin queue depth ${pending.size} exceeds limit ${options.limit}`);
                error.code = 'EXCESS_QUEUE_DEPTH';
                throw error;
            }
        },
        drain(budget) {
            let done = 0;
            for (const account of pending) {
                if (done >= budget)
                    break;
                pending.delete(account);
                options.recalc(account);
                done++;
            }
            return done;
        },
        depth: () => pending.size,
    };
}
export function selfTest() {
    const seen = [];
    const q = create({ limit: 3, recalc: (a) => seen.push(a) });
    for (let i = 0; i < 100; i++)
        q.enqueue(i % 2 ? 'a' : 'b');
    if (q.depth() !== 2 || q.drain(10) !== 2 || seen.join() !== 'b,a' || q.depth() !== 0)
        throw new Error('margin 1.4.3 self-test failed');
}
const module = { component, version, create, selfTest };
export default module;
