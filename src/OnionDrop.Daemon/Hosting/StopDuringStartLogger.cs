using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OnionDrop.Tor;

namespace OnionDrop.Daemon.Hosting;

/// <summary>
/// The host's own logger, less one report. When a hosted service's start throws, the host logs "Hosting failed to
/// start" with the exception and its stack trace (its event 11), then rethrows to `serve`. A stop asked for while
/// tor is still starting (systemctl stop: SIGTERM) cancels that start, which is no failure: `serve` says so in one
/// line ("stopped while starting") and exits 0, and the journal also got the stack trace of a
/// TaskCanceledException. This logger leaves out exactly that report: event 11 for an
/// <see cref="OperationCanceledException"/> once the stop was asked for, the same test `serve` applies before it
/// calls the start a stop. Nor does it report a tor that cannot start for a bad configuration (no binary, a torrc tor
/// refuses: <see cref="TorStartException.BadConfiguration"/>): `serve` says that in one line too, and exits 2. Every
/// other start failure, and everything else the host says, is logged as before.
/// </summary>
internal sealed class StopDuringStartLogger<T>(ILoggerFactory factory, IHostApplicationLifetime lifetime) : ILogger<T>
{
    private const int HostedServiceStartupFaulted = 11;
    private readonly ILogger _inner = new Logger<T>(factory);

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        if (eventId.Id == HostedServiceStartupFaulted && exception is OperationCanceledException && lifetime.ApplicationStopping.IsCancellationRequested)
            return; // serve's own line says it: "stopped while starting"
        if (eventId.Id == HostedServiceStartupFaulted && exception is TorStartException { BadConfiguration: true })
            return; // serve's own line says it: "bad configuration: ...", after tor's own log lines
        _inner.Log(logLevel, eventId, state, exception, formatter);
    }

    public bool IsEnabled(LogLevel logLevel) => _inner.IsEnabled(logLevel);

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => _inner.BeginScope(state);
}

internal static class StopDuringStartLogger
{
    /// <summary>
    /// Puts <see cref="StopDuringStartLogger{T}"/> in place of the host's logger. The host asks for its logger by its
    /// own type, internal to Microsoft.Extensions.Hosting; should a later version rename it, nothing is replaced and
    /// the host logs as before (ServeHostingTests.A_stop_while_tor_is_starting_is_a_clean_stop would say so).
    /// </summary>
    public static void Register(IServiceCollection services)
    {
        if (typeof(HostApplicationBuilder).Assembly.GetType("Microsoft.Extensions.Hosting.Internal.Host") is { } host)
            services.AddSingleton(typeof(ILogger<>).MakeGenericType(host), typeof(StopDuringStartLogger<>).MakeGenericType(host));
    }
}
