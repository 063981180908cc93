using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace OnionDrop.Tor.Tests;

/// <summary>Collects log lines (and echoes them to the test's progress output) so tests can assert on what was logged.</summary>
public sealed class TestLogger<T> : ILogger<T>
{
    public ConcurrentQueue<(LogLevel Level, string Message)> Lines { get; } = new();

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        var message = formatter(state, exception);
        Lines.Enqueue((logLevel, message));
        TestContext.Progress.WriteLine($"[{logLevel}] {message}");
    }
}
