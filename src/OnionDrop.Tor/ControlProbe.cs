using System.Diagnostics;
using OnionDrop.Tor.Control;

namespace OnionDrop.Tor;

/// <summary>
/// Asks tor a trivial question (GETINFO version) at each watchdog tick and says when an answer is overdue. A tor
/// that is stopped (SIGSTOP) or hung keeps its process and its control connection, so neither an exit nor a closed
/// connection ever shows it: only a question it does not answer does.
/// </summary>
internal sealed class ControlProbe(TorControlClient control, TimeSpan answerWithin)
{
    private Task? _pending;
    private long _sentAt;   // Stopwatch ticks: a step of the wall clock (NTP at boot) must not make a question look old

    /// <summary>How long the question still out has waited; null when tor has answered them all.</summary>
    public TimeSpan? Waiting => _pending is { IsCompleted: false } ? Stopwatch.GetElapsedTime(_sentAt) : null;

    /// <summary>Asks again unless a question is still out; returns how long that one has waited, once past the limit.</summary>
    public TimeSpan? Tick()
    {
        if (_pending is { IsCompleted: false })
            return Stopwatch.GetElapsedTime(_sentAt) is var waited && waited >= answerWithin ? waited : null;
        _pending = control.GetInfoAsync("version");
        // A closed connection fails the question too; the session's end says so, not this.
        _pending.ContinueWith(t => t.Exception, TaskContinuationOptions.OnlyOnFaulted);
        _sentAt = Stopwatch.GetTimestamp();
        return null;
    }
}
