using System.Threading.Tasks.Sources;

namespace OnionDrop.Files;

/// <summary>
/// Runs the same piece of work on a pool thread, again and again, without allocating: what Task.Run does
/// once per chunk for a pipeline's second core, minus the task, delegate and closure it allocates each time.
/// Over a 2 GiB upload that garbage came to about 18 MB per GiB, and the heap the GC grew to hold it showed
/// in the daemon's peak memory.
/// The work reads its inputs from its owner's fields, set before <see cref="Start"/>. One run at a time: each
/// run's outcome (its exception, if any) is taken once, by awaiting <see cref="WaitAsync"/> or by
/// <see cref="Wait"/>, before the next run starts.
/// </summary>
public sealed class BackgroundStep : IThreadPoolWorkItem, IValueTaskSource
{
    private readonly Action _work;
    // Continuations run on the worker as it finishes (as they do after a Task.Run's task completes).
    private ManualResetValueTaskSourceCore<bool> _outcome;
    // Wait blocks at once instead of spinning: on two busy cores a spin takes time from the very thread awaited.
    private readonly ManualResetEventSlim _finished = new(initialState: false, spinCount: 0);
    private bool _pending;   // started, outcome not yet taken

    public BackgroundStep(Action work) => _work = work;

    public void Start()
    {
        if (_pending) throw new InvalidOperationException("the previous run's outcome has not been taken");
        _pending = true;
        _outcome.Reset();
        ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: false);
    }

    /// <summary>Completes when the run started last has finished, with its exception; at once when none is pending.</summary>
    public ValueTask WaitAsync() => _pending ? new ValueTask(this, _outcome.Version) : ValueTask.CompletedTask;

    /// <summary>
    /// Blocks until the run started last has finished and rethrows its exception; returns at once when none is
    /// pending. For threads of one's own: the thread pool does not see a pool thread blocked here, and adds
    /// threads only slowly, so code on the pool awaits <see cref="WaitAsync"/> instead.
    /// </summary>
    public void Wait()
    {
        if (!_pending) return;
        var version = _outcome.Version;
        if (_outcome.GetStatus(version) == ValueTaskSourceStatus.Pending)
        {
            _finished.Reset();
            _outcome.OnCompleted(static e => ((ManualResetEventSlim)e!).Set(), _finished, version, ValueTaskSourceOnCompletedFlags.None);
            _finished.Wait();
        }
        TakeOutcome(version);
    }

    void IThreadPoolWorkItem.Execute()
    {
        try { _work(); }
        catch (Exception e)
        {
            _outcome.SetException(e);
            return;
        }
        _outcome.SetResult(true);
    }

    private void TakeOutcome(short version)
    {
        _pending = false;
        _outcome.GetResult(version);
    }

    void IValueTaskSource.GetResult(short token) => TakeOutcome(token);

    ValueTaskSourceStatus IValueTaskSource.GetStatus(short token) => _outcome.GetStatus(token);

    void IValueTaskSource.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _outcome.OnCompleted(continuation, state, token, flags);
}
