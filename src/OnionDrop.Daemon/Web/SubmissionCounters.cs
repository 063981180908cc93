namespace OnionDrop.Daemon.Web;

/// <summary>
/// The only record the web side keeps of its traffic: totals since start, in memory. Nothing outside the process
/// reads them (status.json does not carry them); the tests wait on them to know an upload was dealt with. No per-
/// request sizes, times, paths or agents, since any of those could help tie a submission to a source.
/// </summary>
public sealed class SubmissionCounters
{
    private long _received, _refused, _failed;

    /// <summary>Submissions committed to the store.</summary>
    public long Received => Interlocked.Read(ref _received);

    /// <summary>Uploads refused for the client's side: over a limit, malformed, cut off or stalled.</summary>
    public long Refused => Interlocked.Read(ref _refused);

    /// <summary>Uploads lost to the server's side: disk full or an unexpected error.</summary>
    public long Failed => Interlocked.Read(ref _failed);

    internal void CountReceived() => Interlocked.Increment(ref _received);
    internal void CountRefused() => Interlocked.Increment(ref _refused);
    internal void CountFailed() => Interlocked.Increment(ref _failed);
}
